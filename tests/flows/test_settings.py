"""Institution settings: validated at start, secrets masked, errors that say what to fix."""

from __future__ import annotations

import pytest

from flows.settings import ConfigError, load_config


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("LMS_SYNC_"):
            monkeypatch.delenv(name)


def test_file_then_environment_wins(tmp_path, monkeypatch):
    config = tmp_path / "inst.toml"
    config.write_text(
        'institution_id = "state-u"\nbase_url = "https://canvas.example.edu/"\n'
        'token = "from-file"\n[quota]\nmax_concurrent_courses = 3\n'
    )
    monkeypatch.setenv("LMS_SYNC_QUOTA__MAX_CONCURRENT_COURSES", "6")
    monkeypatch.setenv("LMS_SYNC_TOKEN", "from-env")
    loaded = load_config(config)
    assert loaded.base_url == "https://canvas.example.edu"
    assert loaded.quota.max_concurrent_courses == 6
    assert loaded.token is not None and loaded.token.get_secret_value() == "from-env"


def test_yaml_config(tmp_path):
    config = tmp_path / "inst.yaml"
    config.write_text("institution_id: district-9\nbase_url: http://lms.local\ntoken: t\n")
    assert load_config(config).institution_id == "district-9"


def test_secrets_are_masked():
    loaded = load_config(None, institution_id="a", base_url="http://x", token="s3cret-value")
    assert "s3cret-value" not in repr(loaded)
    assert "s3cret-value" not in str(loaded.masked())


def test_every_bad_field_is_named_with_a_fix(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(
        'institution_id = "State U"\nbase_url = "canvas.example.edu"\ntoken = "t"\n'
        "tokn = 1\n[quota]\nmax_concurrent_courses = 0\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert str(config) in message
    for field in ("institution_id", "base_url", "quota.max_concurrent_courses", "tokn"):
        assert f"- {field}:" in message
    assert "unknown setting" in message and "https://" in message


def test_missing_and_blank_credentials(monkeypatch):
    with pytest.raises(ConfigError, match="token: required for vendor 'canvas'"):
        load_config(None, institution_id="a", base_url="http://x")
    with pytest.raises(ConfigError, match="token: is empty"):
        load_config(None, institution_id="a", base_url="http://x", token="  ")
    with pytest.raises(ConfigError, match="client_id and client_secret"):
        load_config(None, institution_id="a", base_url="http://x", vendor="blackboard")
    with pytest.raises(ConfigError, match="institution_id: required"):
        load_config(None, base_url="http://x", token="t")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_one_institution_with_two_lms_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("MOODLE_WS_TOKEN", "moodle-secret")
    config = tmp_path / "multi.toml"
    config.write_text(
        'institution_id = "district-9"\nserving_dsn = "/srv/d9.duckdb"\n'
        "[quota]\nmax_concurrent_courses = 2\n"
        '[[sources]]\nvendor = "canvas"\nbase_url = "https://canvas.d9.org"\ntoken = "c-tok"\n'
        '[[sources]]\nvendor = "moodle"\nbase_url = "https://moodle.d9.org/"\n'
        'token_env = "MOODLE_WS_TOKEN"\n[sources.quota]\nmax_concurrent_courses = 5\n'
    )
    canvas, moodle = load_config(config).per_source()
    assert (canvas.vendor, canvas.base_url, canvas.serving_dsn) == (
        "canvas",
        "https://canvas.d9.org",
        "/srv/d9.duckdb",
    )
    assert canvas.quota.max_concurrent_courses == 2
    assert (moodle.vendor, moodle.base_url, moodle.serving_dsn) == (
        "moodle",
        "https://moodle.d9.org",
        "/srv/d9.duckdb",
    )
    assert moodle.token.get_secret_value() == "moodle-secret"
    assert moodle.quota.max_concurrent_courses == 5
    assert "moodle-secret" not in repr(moodle)


def test_sources_name_what_is_missing(tmp_path):
    config = tmp_path / "multi.toml"
    config.write_text(
        'institution_id = "district-9"\n[[sources]]\nvendor = "blackboard"\n'
        'base_url = "https://bb.d9.org"\n[[sources]]\nvendor = "moodle"\n'
        'base_url = "https://m.d9.org"\ntoken_env = "NOT_SET_ANYWHERE"\n'
    )
    with pytest.raises(ConfigError, match=r"sources\[blackboard\]: client_id and client_secret"):
        load_config(config).per_source()
    with pytest.raises(ConfigError, match="base_url: required"):
        load_config(None, institution_id="a", token="t")
