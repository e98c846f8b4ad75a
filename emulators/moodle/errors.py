"""Moodle web-service error bodies (moodle-api.md §4): HTTP 200 with exception/errorcode/message."""

from __future__ import annotations

from typing import Any


class MoodleError(Exception):
    """A Moodle exception, raised anywhere in a function handler; served in HTTP 200."""

    def __init__(
        self, exception: str, errorcode: str, message: str, debuginfo: str | None = None
    ) -> None:
        super().__init__(errorcode)
        self.exception = exception
        self.errorcode = errorcode
        self.message = message
        self.debuginfo = debuginfo

    def body(self, *, debug: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exception": self.exception,
            "errorcode": self.errorcode,
            "message": self.message,
        }
        if debug and self.debuginfo:
            out["debuginfo"] = self.debuginfo  # §4: only at the DEVELOPER debug level
        return out


def invalid_token() -> MoodleError:
    return MoodleError(
        "core\\exception\\moodle_exception", "invalidtoken", "Invalid token - token not found"
    )


def unknown_function() -> MoodleError:
    # §4: no dedicated "function not found" code.
    return MoodleError(
        "dml_missing_record_exception",
        "invalidrecord",
        "Can't find data record in database table external_functions.",
    )


def access_exception() -> MoodleError:
    return MoodleError("webservice_access_exception", "accessexception", "Access control exception")


def invalid_parameter(debuginfo: str) -> MoodleError:
    return MoodleError(
        "core\\exception\\invalid_parameter_exception",
        "invalidparameter",
        "Invalid parameter value detected",
        debuginfo,
    )


def missing_record(table: str) -> MoodleError:
    return MoodleError(
        "dml_missing_record_exception",
        "invalidrecord",
        f"Can't find data record in database table {table}.",
    )
