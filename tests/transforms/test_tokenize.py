from __future__ import annotations

import hashlib
import hmac

import duckdb
import pytest

from transforms.tokenize import HmacKey, load_hmac_key, token_values

VALUES = [
    "3589026",
    "canvas:3589026",
    "sis:15AE3883B6EC44C349E04E5FE089ABEB",
    "email:javerage@uw.edu",
    "",
    "Zoë Ørsted-Łukasiewicz 日本語 🙂",
    "x" * 300,
    "a'b\"c;--",
    "a\\xAAb",
    *[f"canvas:{i}" for i in range(500)],
]


@pytest.mark.parametrize(
    "key", [b"k" * 32, bytes(range(16)), b"\x00\xff" * 40, "ключ-секрет-🙂".encode()]
)
def test_sql_hmac_equals_python_hmac(key: bytes) -> None:
    k = HmacKey(key=key, version="v1")
    con = duckdb.connect()
    got = token_values(con, VALUES, k)
    want = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in VALUES]
    assert got == want


def test_tokens_stable_across_connections_and_differ_across_keys() -> None:
    a = HmacKey(key=b"a" * 32, version="v1")
    b = HmacKey(key=b"b" * 32, version="v1")
    msgs = ["canvas:1", "sis:S-1"]
    first = token_values(duckdb.connect(), msgs, a)
    again = token_values(duckdb.connect(), msgs, a)
    other = token_values(duckdb.connect(), msgs, b)
    assert first == again
    assert set(first).isdisjoint(other)


def test_key_never_in_repr_or_str() -> None:
    k = HmacKey(key=b"super-secret-key-bytes-0123456789", version="v7")
    for text in (repr(k), str(k), f"{k}"):
        assert "super-secret" not in text
        assert "v7" in text


def test_load_key_from_env_and_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LMS_TEST_KEY", "ab" * 32)
    k = load_hmac_key("env:LMS_TEST_KEY", "v2")
    assert k.key == bytes.fromhex("ab" * 32) and k.version == "v2"
    path = tmp_path / "key"
    path.write_text("a-plain-text-secret-of-some-length\n")
    assert load_hmac_key(f"file:{path}", "v1").key == b"a-plain-text-secret-of-some-length"


def test_bad_key_references_name_the_reference_not_the_value(monkeypatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ValueError, match="NOPE_KEY"):
        load_hmac_key("env:NOPE_KEY", "v1")
    with pytest.raises(ValueError, match="env:NAME or file:/path"):
        load_hmac_key("vault:x", "v1")
    monkeypatch.setenv("SHORT_KEY", "tiny")
    with pytest.raises(ValueError) as err:
        load_hmac_key("env:SHORT_KEY", "v1")
    assert "tiny" not in str(err.value)
