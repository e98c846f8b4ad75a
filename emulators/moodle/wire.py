"""Moodle's REST wire format: bracketed parameters in, JSON or XML out (moodle-api.md §1)."""

from __future__ import annotations

import json
import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

_PART = re.compile(r"\[([^\]]*)\]")


def nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``options[0][name]=limitfrom`` style pairs → nested dicts; all-digit keys become lists
    in index order (``assignmentids[0]=21&assignmentids[1]=22`` → ``[21, 22]`` as text)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head, *_PART.findall("[" + rest)] if rest else [head]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def dumps_json(payload: Any) -> bytes:
    # PHP json_encode escapes "/" and non-ASCII by default; Moodle's REST server does too.
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode("ascii")


def dumps_xml(payload: Any) -> bytes:
    """The REST server's XML rendering (no ``moodlewsrestformat``): RESPONSE / MULTIPLE /
    SINGLE / KEY / VALUE, null as ``<VALUE null="null"/>``."""
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n' + _xml(payload) + "</RESPONSE>\n"
    ).encode()


def _xml(value: Any) -> str:
    if isinstance(value, dict):
        keys = "".join(f"<KEY name={quoteattr(str(k))}>{_xml(v)}</KEY>\n" for k, v in value.items())
        return f"<SINGLE>\n{keys}</SINGLE>\n"
    if isinstance(value, list):
        return "<MULTIPLE>\n" + "".join(_xml(v) for v in value) + "</MULTIPLE>\n"
    if value is None:
        return '<VALUE null="null"/>'
    if isinstance(value, bool):
        value = int(value)
    return f"<VALUE>{escape(str(value))}</VALUE>"


def xml_exception(body: dict[str, Any]) -> bytes:
    """§4: ``<EXCEPTION class="..."><ERRORCODE>..</ERRORCODE><MESSAGE>..</MESSAGE></EXCEPTION>``."""
    debug = f"<DEBUGINFO>{escape(body['debuginfo'])}</DEBUGINFO>" if "debuginfo" in body else ""
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        f"<EXCEPTION class={quoteattr(body['exception'])}>\n"
        f"<ERRORCODE>{escape(body['errorcode'])}</ERRORCODE>\n"
        f"<MESSAGE>{escape(body['message'])}</MESSAGE>\n{debug}</EXCEPTION>\n"
    ).encode()
