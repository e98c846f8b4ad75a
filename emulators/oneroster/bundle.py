"""Write a district as a OneRoster 1.2 CSV bundle, with the mess districts really send.

``manifest.csv`` (``propertyName,value``) names ``manifest.version`` 1.0, ``oneroster.version``
1.2 and, per file, ``file.<name>`` = ``bulk`` | ``delta`` | ``absent`` (1.2 CSV binding §2,
"Manifest"). A **bulk** file is the complete current set (``tobedeleted`` rows left out); a
**delta** file carries only rows changed after ``since``, each with ``status`` ``active`` or
``tobedeleted`` and its ``dateLastModified``.

``messy=True`` (the default) adds what real exports contain and a reader must accept:
``users.csv`` starts with a UTF-8 BOM and ends each row with an extension column
``metadata.lakeside.homeroom``; ``enrollments.csv`` and ``results.csv`` use CRLF line ends;
``status``/``dateLastModified`` are empty in bulk ``users.csv`` (allowed in bulk mode); titles
with commas are quoted, empty optional columns stay empty, grade codes are ``KG``, ``05``,
``PK``, ``UG``, ``TK``.

Planted faults for the malformed-bundle tests: ``break_header="enrollments"`` misspells that
file's ``userSourcedId`` header (column 6); ``bad_role=True`` gives one enrollment the role
``superintendent`` (not in the spec's vocabulary: a quarantine case, not a rejected file).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from emulators.oneroster.institution import BASE_MODIFIED, COLUMNS, FILES, Institution, Record

__all__ = ["BAD_ROLE_ENROLLMENT", "write_bundle"]

EXTENSION_COLUMN = "metadata.lakeside.homeroom"
BAD_ROLE_ENROLLMENT = "enr-planted-bad-role"
_CRLF_FILES = {"enrollments", "results"}


def write_bundle(
    institution: Institution,
    out: Path,
    *,
    mode: str = "bulk",
    since: str = BASE_MODIFIED,
    messy: bool = True,
    as_zip: bool = False,
    break_header: str | None = None,
    bad_role: bool = False,
    files: tuple[str, ...] = FILES,
) -> Path:
    """Write the bundle into the folder ``out`` (or ``out`` as a zip file); returns the path."""
    if mode not in ("bulk", "delta"):
        raise ValueError("mode is 'bulk' or 'delta'")
    contents: dict[str, bytes] = {}
    rows_by_file = institution.records if mode == "bulk" else institution.changed(since)
    manifest = [
        ("manifest.version", "1.0"),
        ("oneroster.version", "1.2"),
        *[(f"file.{f}", mode if f in files else "absent") for f in FILES],
        ("source.systemName", "Lakeside SIS"),
        ("source.systemCode", "lakeside-sis"),
    ]
    contents["manifest.csv"] = _csv(["propertyName", "value"], manifest, "\n")
    for name in files:
        rows = [dict(r) for r in rows_by_file[name]]
        if mode == "bulk":
            rows = [r for r in rows if r["status"] != "tobedeleted"]
        if mode == "bulk" and messy and name == "users":
            for r in rows:
                r["status"] = r["dateLastModified"] = None
        if bad_role and name == "enrollments" and rows:
            planted = dict(rows[-1], sourcedId=BAD_ROLE_ENROLLMENT, role="superintendent")
            rows.append(planted)
        header = list(COLUMNS[name])
        if break_header == name:
            header[header.index("userSourcedId")] = "userSourceId"
        extra = messy and name == "users"
        if extra:
            header.append(EXTENSION_COLUMN)
        body = [
            [*(_cell(r, c) for c in COLUMNS[name]), *([f"H{i % 9}"] if extra else [])]
            for i, r in enumerate(rows)
        ]
        data = _csv(header, body, "\r\n" if messy and name in _CRLF_FILES else "\n")
        if messy and name == "users":
            data = b"\xef\xbb\xbf" + data
        contents[f"{name}.csv"] = data
    if as_zip:
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in contents.items():
                z.writestr(name, data)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (out / name).write_bytes(data)
    return out


def _cell(row: Record, column: str) -> str:
    value = row.get(column)
    return "" if value is None else value


def _csv(header: list[str], rows: list, newline: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
