"""A OneRoster 1.2 CSV bundle (a zip or a folder), checked, then read a class at a time.

Opening a bundle does, once and before anything is staged:

1. ``manifest.csv`` (``propertyName,value``): ``oneroster.version`` must be 1.2 (1.1 is accepted:
   its files are a subset here) and every ``file.<name>`` is ``bulk``, ``delta`` or ``absent``; a
   file the manifest lists as bulk/delta must be in the bundle (1.2 CSV binding, "Manifest").
2. Each present file's header row against the 1.2 table's column order (a UTF-8 BOM is skipped;
   extension columns may follow the spec's). A wrong header rejects the bundle with
   :class:`BundleError` naming the file, line 1 and the column.
3. Each staged file is read by DuckDB's streaming CSV reader (RFC 4180 quoting, CRLF or LF, BOM)
   into a private on-disk DuckDB database, all text, sorted by its class (so a class's rows are
   a few adjacent row groups). A row with the wrong number of fields rejects the bundle with the
   file, line and column DuckDB reports — never the row's text, which may hold PII.

Memory: DuckDB runs with a memory limit and spills to the bundle's work folder, so a million
enrollment rows never sit in Python memory; a class read returns only that class's rows, in
pages. Because every check runs before the first partition is staged, a rejected bundle leaves the
serving tables exactly as they were.

``mode`` is ``bulk`` when the class-scoped roster files (classes, enrollments) are ``bulk``: each
class partition is then the class's complete roster and rows absent from it are soft-deleted by
the loader. Otherwise the bundle is applied as a ``delta``: only ``tobedeleted`` deletes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa

from connectors.oneroster.streams import HEADERS, MANIFEST_FILES, STREAMS, Stream

__all__ = ["Bundle", "BundleError"]

_MODES = ("bulk", "delta", "absent")


class BundleError(ValueError):
    """A bundle that breaks the OneRoster CSV binding; the message names file, line and column."""

    kind = "configuration"


class Bundle:
    """An opened, checked bundle. Thread-safe reads (one DuckDB cursor per call)."""

    def __init__(self, uri: str, *, memory_limit: str = "512MB") -> None:
        self.uri = uri
        self._work = Path(tempfile.mkdtemp(prefix="lms-sync-oneroster-"))
        self._lock = threading.Lock()
        try:
            self.root = self._materialize(uri)
            self.manifest = self._manifest()
            self.files = {f: m for f, m in self.manifest.items() if m != "absent" and f in HEADERS}
            for file in self.files:
                self._check_header(file)
            self.digest = self._digest()
            self._con = duckdb.connect(str(self._work / "bundle.duckdb"))
            self._con.execute(f"SET memory_limit = '{memory_limit}'")
            self._con.execute(f"SET temp_directory = '{self._work / 'spill'}'")
            self._con.execute("SET preserve_insertion_order = true")
            self._con.execute("SET enable_progress_bar = false")
            for stream in STREAMS:
                self._load(stream)
        except BaseException:
            self.close()
            raise
        class_files = ("classes", "enrollments")
        self.mode = "bulk" if all(self.files.get(f) == "bulk" for f in class_files) else "delta"

    # ---- opening -------------------------------------------------------------------------------

    def _materialize(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            raise BundleError(
                f"bundle_uri: scheme {parsed.scheme!r} is not supported yet; give a local path or"
                " file:// URI of a folder or .zip"
            )
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        if path.is_dir():
            return path
        if path.is_file() and zipfile.is_zipfile(path):
            target = self._work / "bundle"
            target.mkdir()
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    name = Path(info.filename).name  # flat bundle: ignore folders in the zip
                    if info.is_dir() or not name.endswith(".csv"):
                        continue
                    with z.open(info) as src, open(target / name, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            return target
        raise BundleError(f"bundle_uri: {path} is neither a folder nor a zip file")

    def _manifest(self) -> dict[str, str]:
        path = self.root / "manifest.csv"
        if not path.is_file():
            raise BundleError("manifest.csv: missing — a OneRoster CSV bundle must carry one")
        rows = _rows(path, limit=None)
        if not rows or [h.strip() for h in rows[0][:2]] != ["propertyName", "value"]:
            raise BundleError("manifest.csv, line 1: expected the header 'propertyName,value'")
        props: dict[str, str] = {}
        for line, row in enumerate(rows[1:], start=2):
            if len(row) < 2:
                raise BundleError(f"manifest.csv, line {line}: expected two fields")
            props[row[0].strip()] = row[1].strip()
        version = props.get("oneroster.version")
        if version not in ("1.2", "1.1"):
            raise BundleError(
                f"manifest.csv: oneroster.version is {version!r}; this reader expects 1.2"
            )
        files: dict[str, str] = {}
        for line, row in enumerate(rows[1:], start=2):
            name = row[0].strip()
            if not name.startswith("file."):
                continue
            mode = row[1].strip().lower()
            if mode not in _MODES:
                raise BundleError(
                    f"manifest.csv, line {line}, column 2: {name} is {row[1]!r}; "
                    "expected bulk, delta or absent"
                )
            files[name[5:]] = mode
        unknown = sorted(set(files) - set(MANIFEST_FILES))
        if unknown:
            raise BundleError(f"manifest.csv: unknown files {unknown}")
        for name, mode in files.items():
            if mode != "absent" and not (self.root / f"{name}.csv").is_file():
                raise BundleError(
                    f"manifest.csv: file.{name} is {mode} but {name}.csv is not in the bundle"
                )
        return files

    def _check_header(self, file: str) -> None:
        rows = _rows(self.root / f"{file}.csv", limit=1)
        header = [h.strip() for h in rows[0]] if rows else []
        spec = HEADERS[file]
        for index, want in enumerate(spec):
            got = header[index] if index < len(header) else None
            if got != want:
                found = f"found {got!r}" if got is not None else "the header ends there"
                raise BundleError(
                    f"{file}.csv, line 1, column {index + 1}: expected header {want!r}, {found}"
                    " (OneRoster 1.2 CSV column order); the bundle was not loaded"
                )

    def _digest(self) -> dict[str, str]:
        out = {}
        for file in self.files:
            h = hashlib.sha256()
            with open(self.root / f"{file}.csv", "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[file] = h.hexdigest()
        return out

    def _load(self, stream: Stream) -> None:
        """The file's staged columns into a table sorted by class (or sourcedId)."""
        table = stream.name
        source_columns = [c for c in stream.columns if c in stream.header]
        if stream.file not in self.files:
            cols = ", ".join(f'CAST(NULL AS VARCHAR) AS "{c}"' for c in stream.columns)
            self._con.execute(f"CREATE TABLE {table} AS SELECT {cols} LIMIT 0")
            return
        path = str(self.root / f"{stream.file}.csv").replace("'", "''")
        raw = (
            f"read_csv('{path}', header = true, all_varchar = true, delim = ',', quote = '\"',"
            " escape = '\"', store_rejects = true, rejects_table = 'rejects', rejects_scan ="
            " 'rejects_scan')"
        )
        select = [f'"{c}"' for c in source_columns]
        order = "sourcedId"
        if stream.name == "users":
            select = [f'u."{c}"' for c in source_columns] + ["r.role"]
            body = (
                f"SELECT {', '.join(select)} FROM {raw} u"
                f" LEFT JOIN {self._roles_sql()} r ON r.user_id = u.sourcedId"
            )
        elif stream.name == "results":
            select = [f'r."{c}"' for c in source_columns] + ['li."classSourcedId"']
            items = self._line_item_classes_sql()
            body = (
                f"SELECT {', '.join(select)} FROM {raw} r"
                f' LEFT JOIN {items} li ON li.li_id = r."lineItemSourcedId"'
            )
            order = '"classSourcedId", sourcedId'
        else:
            body = f"SELECT {', '.join(select)} FROM {raw}"
            if "classSourcedId" in stream.columns:
                order = '"classSourcedId", sourcedId'
        columns = ", ".join(f'"{c}"' for c in stream.columns)
        try:
            self._con.execute(
                f"CREATE TABLE {table} AS SELECT {columns} FROM ({body}) ORDER BY {order}"
            )
        except duckdb.Error as exc:
            raise BundleError(
                f"{stream.file}.csv: could not be read as CSV ({type(exc).__name__})"
            ) from None
        self._raise_rejects(stream.file)

    def _roles_sql(self) -> str:
        """Each user's primary role (roles.csv, roleType=primary, else any role)."""
        if "roles" not in self.files:
            return "(SELECT NULL::VARCHAR AS user_id, NULL::VARCHAR AS role LIMIT 0)"
        path = str(self.root / "roles.csv").replace("'", "''")
        return (
            '(SELECT "userSourcedId" AS user_id, arg_min("role", CASE "roleType" WHEN'
            " 'primary' THEN 0 ELSE 1 END) AS role FROM read_csv('" + path + "', header = true,"
            " all_varchar = true) WHERE coalesce(status, '') <> 'tobedeleted' GROUP BY 1)"
        )

    def _line_item_classes_sql(self) -> str:
        if "lineItems" not in self.files:
            return "(SELECT NULL::VARCHAR AS li_id, NULL::VARCHAR AS classSourcedId LIMIT 0)"
        path = str(self.root / "lineItems.csv").replace("'", "''")
        return (
            '(SELECT sourcedId AS li_id, any_value("classSourcedId") AS "classSourcedId" FROM'
            f" read_csv('{path}', header = true, all_varchar = true) GROUP BY 1)"
        )

    def _raise_rejects(self, file: str) -> None:
        try:
            row = self._con.execute(
                "SELECT line, column_idx, error_type FROM rejects ORDER BY line LIMIT 1"
            ).fetchone()
            self._con.execute("DROP TABLE IF EXISTS rejects")
            self._con.execute("DROP TABLE IF EXISTS rejects_scan")
        except duckdb.CatalogException:
            return
        if row is not None:
            line, column, error = row
            raise BundleError(
                f"{file}.csv, line {line}, column {column}: {str(error).lower().replace('_', ' ')}"
                " (the row does not fit the header); the bundle was not loaded"
            )

    # ---- reading -------------------------------------------------------------------------------

    def class_ids(self) -> list[str]:
        with self._lock:
            cur = self._con.cursor()
        try:
            rows = cur.execute("SELECT sourcedId FROM classes ORDER BY sourcedId").fetchall()
        finally:
            cur.close()
        return [r[0] for r in rows if r[0]]

    def changed_class_ids(self) -> list[str]:
        """Classes any class-scoped row of the bundle belongs to (what a delta touches)."""
        sql = (
            'SELECT sourcedId AS c FROM classes UNION SELECT "classSourcedId" FROM enrollments'
            ' UNION SELECT "classSourcedId" FROM line_items'
            ' UNION SELECT "classSourcedId" FROM results'
        )
        with self._lock:
            cur = self._con.cursor()
        try:
            rows = cur.execute(f"SELECT c FROM ({sql}) WHERE c IS NOT NULL ORDER BY c").fetchall()
        finally:
            cur.close()
        return [r[0] for r in rows]

    def batches(
        self, stream: Stream, *, class_id: str | None, page_rows: int
    ) -> Iterator[pa.Table]:
        """The stream's rows (of ``class_id``, or all for None), ``page_rows`` at a time."""
        where, params = "", []
        if class_id is not None:
            column = "sourcedId" if stream.name == "classes" else "classSourcedId"
            where, params = f'WHERE "{column}" = ?', [class_id]
        with self._lock:
            cur = self._con.cursor()
        try:
            query = cur.sql(f"SELECT * FROM {stream.name} {where}", params=params)
            reader = query.to_arrow_reader(page_rows)
            for batch in reader:
                if batch.num_rows:
                    yield pa.Table.from_batches([batch])
        finally:
            cur.close()

    def close(self) -> None:
        con = getattr(self, "_con", None)
        if con is not None:
            con.close()
            self._con = None
        shutil.rmtree(self._work, ignore_errors=True)


def _rows(path: Path, *, limit: int | None) -> list[list[str]]:
    """The first ``limit`` CSV records of ``path`` (BOM skipped), read with the csv module."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        text = f if limit is None else io.StringIO("".join(_head(f, 64 * 1024)))
        reader = csv.reader(text)
        out = []
        for row in reader:
            out.append(row)
            if limit is not None and len(out) >= limit:
                break
        return out


def _head(f, size: int) -> list[str]:
    return [f.read(size)]
