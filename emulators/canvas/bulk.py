"""Mount Canvas's bulk paths on the REST app: Canvas Data 2 (DAP) and account reports.

``install(app, institution, settings)`` is the one call ``create_app`` makes. The DAP endpoints get
their own gateway in front of the REST front door (they authenticate with an OAuth JWT, object URLs
with a signature, and have their own per-endpoint limits); account reports are ordinary REST routes
behind the front door. Tests reach the services through ``app.state.dap`` / ``app.state.reports``,
or ``services(emulator)`` for a running :class:`CanvasEmulator`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.applications import Starlette

from emulators.canvas.dap import DAP_PREFIXES, DapService, DapSettings, dap_app
from emulators.canvas.institution import Institution
from emulators.canvas.reports import ReportService, report_routes


class _DapGateway:
    """ASGI: ``/ids/...`` and ``/dap/...`` go to the DAP app, everything else to Canvas REST."""

    def __init__(self, app: Any, *, dap: Starlette) -> None:
        self.app = app
        self.dap = dap

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(DAP_PREFIXES):
            await self.dap(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install(app: Starlette, institution: Institution, settings: Any) -> None:
    """Add DAP and account reports to a Canvas REST app built by ``create_app``."""
    dap_settings = DapSettings()
    dap_settings = replace(
        dap_settings,
        client_id=getattr(settings, "dap_client_id", dap_settings.client_id),
        client_secret=getattr(settings, "dap_client_secret", dap_settings.client_secret),
        processing_seconds=getattr(
            settings, "dap_processing_seconds", dap_settings.processing_seconds
        ),
    )
    service = DapService(institution, dap_settings)
    app.state.dap = service
    app.state.reports = ReportService(
        institution, processing_seconds=dap_settings.processing_seconds
    )
    app.router.routes[0:0] = report_routes()
    app.add_middleware(_DapGateway, dap=dap_app(service))


def services(emulator: Any) -> tuple[DapService, ReportService]:
    """The DAP and report services of a running ``CanvasEmulator`` (for tests and benchmarks)."""
    app = emulator._server.config.app
    return app.state.dap, app.state.reports
