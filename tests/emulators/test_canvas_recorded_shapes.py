"""Emulator payloads carry the fields of real recorded Canvas responses, with the same JSON types.

The recordings are /work/shared/reference/canvas-recorded (UW's uw-restclients-canvas test
instance). Two deliberate departures, both from quirks of those recordings rather than Canvas:

- ``courses__862539__users_include_enrollments_search_term_jav`` carries ids as strings (an old
  test instance); real Canvas and the emulator use integers, so digit-string ids are compared
  as integers.
- ``users__sis_user_id_...__enrollments`` has hand-edited numeric ``current_grade``/``final_grade``;
  Canvas renders grades as strings in the course grading scheme ("A-"), as the emulator does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.canvas import Institution

RECORDED = Path("/work/shared/reference/canvas-recorded")

# Keys Canvas only emits in conditions the emulator does not model (files attached, rubrics,
# plagiarism tools, SIS-import provenance, permissions-dependent flags, grade overrides).
CONDITIONAL = {
    "attachments",
    "rubric",
    "rubric_settings",
    "use_rubric_for_grading",
    "free_form_criterion_comments",
    "turnitin_settings",
    "sis_source_id",
    "can_be_removed",
    "avatar_url",
    "override_score",
    "override_grade",
}
NUMERIC_GRADE_QUIRK = {"current_grade", "final_grade"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _fix_string_ids(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _fix_string_ids(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_string_ids(v) for v in value]
    if isinstance(value, str) and value.isdigit() and (key == "id" or key.endswith("_id")):
        return int(value)
    return value


def _compare(recorded: Any, emitted: Any, where: str, problems: list[str]) -> None:
    if recorded is None or emitted is None:
        return
    if _kind(recorded) != _kind(emitted):
        if where.rsplit(".", 1)[-1] not in NUMERIC_GRADE_QUIRK:
            problems.append(f"{where}: recorded {_kind(recorded)}, emulator {_kind(emitted)}")
        return
    if isinstance(recorded, dict):
        for key, value in recorded.items():
            if key not in emitted:
                if key not in CONDITIONAL:
                    problems.append(f"{where}.{key}: missing")
                continue
            _compare(value, emitted[key], f"{where}.{key}", problems)
    elif isinstance(recorded, list) and recorded and emitted:
        for item in recorded:
            _compare(item, emitted[0], f"{where}[]", problems)


def _load(name: str) -> Any:
    return _fix_string_ids(json.loads((RECORDED / name).read_text()))


def _cases(institution: Institution, client: httpx.Client) -> list[tuple[str, Any]]:
    cid = institution.course_ids()[0]
    student_enrollment = next(
        e
        for e in institution.enrollments(cid)
        if e["type"] == "StudentEnrollment" and e["grades"]["current_score"] is not None
    )
    users = client.get(
        f"/api/v1/courses/{cid}/users", params={"include[]": "enrollments", "per_page": 100}
    ).json()
    sections = client.get(
        f"/api/v1/courses/{cid}/sections", params={"include[]": "students"}
    ).json()
    course = client.get(f"/api/v1/courses/{cid}", params={"include[]": "term"}).json()
    submissions = list(institution.iter_submissions(cid))
    graded = next(s for s in submissions if s["workflow_state"] == "graded")
    return [
        ("courses__149650_include_term", course),
        (
            "accounts__12345__terms_per_page_500_workflow_state_all",
            {"enrollment_terms": institution.terms()},
        ),
        ("courses__862539__assignments__index", institution.assignments(cid)),
        (
            "courses__sis_course_id_2013-autumn-PHYS-248-A__assignments",
            institution.assignments(cid),
        ),
        ("courses__862539__enrollments", [student_enrollment]),
        ("courses__sis_course_id_2013-autumn-PHYS-248-A__enrollments", [student_enrollment]),
        ("users__sis_user_id_9136CCB8F66711D5BE060004AC494FFE__enrollments", [student_enrollment]),
        ("courses__862539__users_include_enrollments_search_term_jav", users),
        ("courses__sis_course_id_2013-spring-CSE-142-A__sections", sections),
        ("courses__862539__students__submissions_student_ids_all", [graded]),
        ("courses__862539__assignments__2367793__submissions", [graded]),
        (
            "courses__sis_course_id_2013-autumn-PHYS-248-A__students__submissions_student_ids_all",
            [graded],
        ),
    ]


def test_every_recorded_file_is_covered(institution: Institution, client: httpx.Client) -> None:
    covered = {name for name, _ in _cases(institution, client)}
    recorded = {p.name for p in RECORDED.iterdir() if p.suffix not in (".md", ".http-headers")}
    assert recorded <= covered


def test_payload_keys_and_types_match_recordings(
    institution: Institution, client: httpx.Client
) -> None:
    problems: list[str] = []
    for name, emitted in _cases(institution, client):
        _compare(_load(name), emitted, name, problems)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["courses__862539__enrollments"])
def test_every_enrollment_state_keeps_the_shape(institution: Institution, name: str) -> None:
    problems: list[str] = []
    recorded = _load(name)
    for cid in institution.course_ids():
        for enrollment in institution.enrollments(cid):
            if enrollment["type"] == "StudentEnrollment":
                _compare(recorded, [enrollment], f"{name}@{enrollment['id']}", problems)
    assert not problems, "\n".join(problems[:20])
