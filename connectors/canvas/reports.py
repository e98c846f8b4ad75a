"""Canvas account reports (canvas-api.md §7) on the export-job state machine.

::

    POST /api/v1/accounts/1/reports/grade_export_csv  parameters[include_deleted]=false
        → {"id": 7, "status": "created", "progress": 0, "file_url": null}
    GET  /api/v1/accounts/1/reports/grade_export_csv/7
        → {"status": "running", "progress": 40} … {"status": "complete", "file_url": "…"}
    GET  file_url  → the CSV (with the REST bearer token)

Terminal statuses: ``complete``; ``error`` → failed; ``aborted``/``deleted`` → cancelled (§7.2).
A report run is kept by Canvas, so a restarted sync resumes polling the saved run. The CSV is
downloaded with the same REST client's credentials, byte for byte, by :func:`fetch_report_file`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.canvas.dap import RequestingClient
from connectors.errors import PermanentError
from connectors.export_jobs import Download, ExportFailed, JobExpired, JobStatus

__all__ = ["AccountReportExport", "fetch_report_file"]

_CANCELLED = frozenset({"aborted", "deleted"})


class AccountReportExport:
    """Adapter for one report type; a request is ``{"report": ..., "parameters": {...}}``.

    ``client`` is a :class:`RequestingClient` on ``{base}/api/v1/`` with the Canvas token (the
    same retry, throttle classification and pacing as the REST connector).
    """

    min_poll_interval = 1.0  # Canvas updates progress per 1000 rows; faster polls learn nothing
    initiations_per_minute: int | None = None  # paced like any REST call (the client's pacer)

    def __init__(self, client: RequestingClient, *, account_id: str = "1") -> None:
        self.client = client
        self.account_id = account_id
        self._report: str | None = None

    def _path(self, report: str, run_id: str | None = None) -> str:
        base = f"accounts/{self.account_id}/reports/{report}"
        return f"{base}/{run_id}" if run_id else base

    def initiate(self, request: Mapping[str, Any]) -> str:
        self._report = str(request["report"])
        form = {f"parameters[{k}]": str(v) for k, v in (request.get("parameters") or {}).items()}
        doc = self.client.request_json(
            "POST",
            self._path(self._report),
            form=form or {"parameters[skip_message]": "true"},
            endpoint="accounts/{id}/reports/{report}",
        ).data
        return f"{self._report}/{doc['id']}"

    def poll(self, job_id: str) -> JobStatus:
        report, run_id = job_id.split("/", 1)
        try:
            doc = self.client.get_json(
                self._path(report, run_id), endpoint="accounts/{id}/reports/{report}/{run}"
            ).data
        except PermanentError as exc:
            if exc.status == 404:
                raise JobExpired(job_id) from None
            raise
        status = doc.get("status")
        progress = (doc.get("progress") or 0) / 100
        if status == "complete" and doc.get("file_url"):
            return JobStatus("complete", doc, 1.0)
        if status == "error":
            return JobStatus("failed", doc, progress, error="report status error")
        if status in _CANCELLED:
            return JobStatus("cancelled", doc, progress)
        return JobStatus("pending", doc, progress)

    def resolve(self, job_id: str, doc: Mapping[str, Any]) -> list[Download]:
        return [Download(job_id, str(doc["file_url"]), gzip=False, suffix=".csv")]

    def cancel(self, job_id: str) -> None:
        report, run_id = job_id.split("/", 1)
        self.client.request_json(
            "PUT",
            f"{self._path(report, run_id)}/abort",
            endpoint="accounts/{id}/reports/{report}/{run}/abort",
        )


def fetch_report_file(client: RequestingClient, item: Download, path: Path) -> dict[str, Any]:
    """Stream the report's CSV to ``path`` through the authenticated client (bounded memory)."""
    temp = path.with_name(f".{path.name}.part")
    digest = hashlib.sha256()
    size = 0
    with client._http.stream("GET", item.url) as response:
        if response.status_code != 200:
            raise ExportFailed(item.object_id, None, f"report file HTTP {response.status_code}")
        with open(temp, "wb") as out:
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    os.replace(temp, path)
    return {"bytes": size, "sha256": digest.hexdigest()}
