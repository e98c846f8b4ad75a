"""Keep secrets and personal data out of everything the HTTP layer emits.

Error messages, span attributes, `Page.url` and dead-letter records all pass through here. Two
things are removed: query parameters that carry credentials (Canvas accepts `access_token`, Moodle
needs `wstoken`, Moodle file URLs take `token`) and anything in vendor-supplied text that looks like
an email address or a bearer token.

    >>> redact_url("https://m.example/webservice/rest/server.php?wstoken=abc&wsfunction=f")
    'https://m.example/webservice/rest/server.php?wstoken=REDACTED&wsfunction=f'
"""

from __future__ import annotations

import re

import httpx

SECRET_PARAMS = frozenset(
    {"access_token", "api_key", "apikey", "client_secret", "key", "password", "token", "wstoken"}
)
_MASK = "REDACTED"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_BEARER = re.compile(r"(?i)\b(bearer|token)\s+[\w.~+/=-]{8,}")
# Long runs that mix letters and digits look like credentials (Canvas tokens are "7~" + 64 chars).
_TOKEN_LIKE = re.compile(r"(?=[\w~.+/=-]*\d)(?=[\w~.+/=-]*[A-Za-z])[\w~.+/=-]{24,}")
_SECRET_ASSIGNMENT = re.compile(r"(?i)\b(" + "|".join(sorted(SECRET_PARAMS)) + r")=[^&\s\"']+")


def redact_url(url: str | httpx.URL) -> str:
    """Return `url` with the value of every credential-bearing query parameter masked."""
    parsed = httpx.URL(str(url))
    if not parsed.query:
        return str(parsed)
    params = [
        (name, _MASK if name.lower() in SECRET_PARAMS else value)
        for name, value in parsed.params.multi_items()
    ]
    return str(parsed.copy_with(params=params))


def strip_query(url: str | httpx.URL) -> str:
    """Return `url` without its query string (for span attributes, where ids of people may hide)."""
    return str(httpx.URL(str(url)).copy_with(query=None))


def scrub(text: str, *, limit: int = 200) -> str:
    """Mask emails, bearer tokens, `secret=value` pairs and token-like strings, then truncate."""
    text = _EMAIL.sub("[email]", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {_MASK}", text)
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}={_MASK}", text)
    text = _TOKEN_LIKE.sub(_MASK, text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
