"""PII tokenization: HMAC-SHA256 of person identifiers, computed inside DuckDB.

A token is ``hex(HMAC-SHA256(key, message))`` where the message names the identifier's kind, so the
same text used as two kinds of id never yields the same token:

* SIS user id: ``"sis:" + sis_user_id`` → ``person_token`` (when present) and ``sis_id_token``;
* vendor user id: ``"<vendor>:" + user_id`` → people ``source_id``; ``person_token`` fallback;
* login id: ``"login:" + login_id`` → ``login_id_token``;
* email: ``"email:" + lower(trim(email))`` → ``email_token``.

``person_token`` uses the SIS id when the LMS has one, so one student is one token across every LMS
the institution runs. Tokens are stable for a key and differ between institutions with different
keys; the key version is stored beside them (``token_key_version``).

The HMAC runs in DuckDB SQL (shared/reference/toolchain.md §HMAC, the fastest measured path), on the
DISTINCT messages only, and is joined back::

    sha256(from_hex($opad) || from_hex(sha256(from_hex($ipad) || encode(msg))))

``encode(msg)`` is the UTF-8 bytes of the text (``msg::BLOB`` would reject non-ASCII and read
``\\xNN`` as an escape). ``$ipad``/``$opad`` are the key zero-padded to 64 bytes XOR 0x36 /
0x5c, passed as query parameters, never interpolated into SQL text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

__all__ = [
    "HMAC_SQL",
    "TOKENS_TABLE",
    "HmacKey",
    "load_hmac_key",
    "tokenize_distinct",
]

_BLOCK = 64  # SHA-256 block size in bytes

# The SQL expression of HMAC-SHA256(key, msg) over a VARCHAR ``msg``; needs $ipad and $opad.
HMAC_SQL = "sha256(from_hex($opad) || from_hex(sha256(from_hex($ipad) || encode(msg))))"

# Session-local (TEMP) table mapping each message to its token; it holds raw identifiers, so it
# never lives in the database file and is dropped when the load finishes.
TOKENS_TABLE = "_pii_tokens"


@dataclass(frozen=True)
class HmacKey:
    """An HMAC key and its version. The key bytes never appear in repr, str or logs."""

    key: bytes = field(repr=False)
    version: str

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("HMAC key is too short: use at least 16 bytes (32 recommended)")
        if not self.version:
            raise ValueError("HMAC key version must be a non-empty string")

    def __repr__(self) -> str:
        return f"HmacKey(version={self.version!r}, key=<redacted>)"

    __str__ = __repr__

    def pads(self) -> dict[str, str]:
        """The inner and outer pads as hex, for the ``$ipad``/``$opad`` query parameters."""
        key = self.key
        if len(key) > _BLOCK:
            import hashlib

            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        return {
            "ipad": bytes(b ^ 0x36 for b in key).hex(),
            "opad": bytes(b ^ 0x5C for b in key).hex(),
        }


def load_hmac_key(ref: str, version: str) -> HmacKey:
    """Load a key from a secret reference: ``env:NAME`` or ``file:/path``.

    The value may be hex (64+ hex chars) or raw text; surrounding whitespace is stripped. Errors
    name the reference, never the value.
    """
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        raw = os.environ.get(target)
        if raw is None:
            raise ValueError(f"HMAC key reference {ref!r}: environment variable is not set")
        value = raw.strip().encode()
    elif scheme == "file":
        path = Path(target)
        if not path.is_file():
            raise ValueError(f"HMAC key reference {ref!r}: file does not exist")
        value = path.read_bytes().strip()
    else:
        raise ValueError(f"HMAC key reference {ref!r}: use env:NAME or file:/path")
    if not value:
        raise ValueError(f"HMAC key reference {ref!r} is empty")
    try:
        text = value.decode("ascii")
        if len(text) >= 64 and len(text) % 2 == 0:
            value = bytes.fromhex(text)
    except (UnicodeDecodeError, ValueError):
        pass
    return HmacKey(key=value, version=version)


def ensure_tokens_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {TOKENS_TABLE} (msg VARCHAR, token VARCHAR)")


def tokenize_distinct(con: duckdb.DuckDBPyConnection, *, messages_sql: str, key: HmacKey) -> int:
    """Tokenize every distinct message produced by ``messages_sql`` (a query with one VARCHAR
    column named ``msg``) that is not tokenized yet; returns how many were added."""
    ensure_tokens_table(con)
    row = con.execute(
        f"""
        INSERT INTO {TOKENS_TABLE}
        SELECT msg, {HMAC_SQL} AS token
        FROM (SELECT DISTINCT msg FROM ({messages_sql}) WHERE msg IS NOT NULL) d
        WHERE NOT EXISTS (SELECT 1 FROM {TOKENS_TABLE} t WHERE t.msg = d.msg)
        """,
        key.pads(),
    ).fetchone()
    return int(row[0]) if row else 0


def token_values(
    con: duckdb.DuckDBPyConnection, messages: list[str], key: HmacKey
) -> list[str | None]:
    """Tokens of a few messages, in order (tests and one-off lookups; bulk work joins in SQL)."""
    rows = con.execute(
        f"SELECT {HMAC_SQL} FROM (SELECT unnest($msgs) AS msg, generate_subscripts($msgs, 1) AS i)"
        " ORDER BY i",
        {**key.pads(), "msgs": messages},
    ).fetchall()
    return [r[0] for r in rows]
