"""A seeded synthetic Blackboard Learn site that knows its own ground truth.

Every object is a pure function of ``(seed, course index, position)``, so the same arguments always
yield the same site. The dicts returned here are exactly what the emulator serves; field names,
types and enums follow the official spec (``shared/reference/blackboard-learn-openapi.json``,
Learn 3900.123.0): ``CourseV2``, ``CourseMembership``, ``User``, ``GradeColumnV2``, ``GradeV2``,
``AttemptV2``, v1 ``Grade``, ``CourseMeeting`` and ``AttendanceRecord``. As Learn does (Jackson
``NON_NULL``), a field without a value is left out rather than sent as ``null`` — the spec's types
do not admit null.

Id layout (primary ids are ``_<pk>_1`` strings; meeting and attendance ids are int64, as the spec
says):

* courses ``_<100 + i>_1``; users ``_<100000 + 1000 i + p>_1`` (students p < 900, instructor 900,
  teaching assistant 901); memberships ``_<500000 + 1000 i + p>_1``;
* grade columns ``_<7000 + 100 i + c>_1``; attempts ``_<20000000 + 100000 i + 1000 c + 4 p + k>_1``;
* meetings ``800000 + 100 i + k``; attendance records ``90000000 + 100000 i + 1000 k + p``.

Choices where the reference marks Learn behaviour as unverified, documented once here:

* Course availability cycles Yes, No (index 1 mod 10), Yes + ``closedComplete`` (2 mod 10) and
  Disabled (3 mod 10: SIS-disabled, i.e. deleted); a Disabled course still serves its data.
* Student memberships cycle availability: position 7 mod 10 is ``No`` (inactive), 8 mod 10 is
  ``Disabled``; grades of Disabled memberships are left out unless
  ``includeDisabledMemberships=true`` (spec, Get Column Grades).
* SIS ids: ``externalId`` is the SIS person id and students carry the same value as ``studentId``;
  one student in nine (position 4 mod 9) is a manual account with neither.
* A grade column's grades list only users with a grade record; a NeedsGrading record has no score.
"""

from __future__ import annotations

import calendar
import hashlib
import struct
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ANCHOR = calendar.timegm((2026, 11, 20, 0, 0, 0))  # the site's "now"
_DAY = 86_400
TERM_START = calendar.timegm((2026, 8, 24, 13, 0, 0))
TERM_END = calendar.timegm((2026, 12, 18, 20, 0, 0))
DATA_SOURCE_ID = "_2_1"  # SYSTEM data source
TERM_ID = "_3_1"
SPRING_TERM_ID = "_2_1"

ATTENDANCE_STATUSES = ("Present", "Late", "Absent", "Excused")  # spec AttendanceRecord.status

_FIRST = (
    "Ava", "Liam", "Noah", "Maya", "Ethan", "Sofia", "Lucas", "Amara", "Kenji", "Priya",
    "Mateo", "Fatima", "Oliver", "Chloe", "Diego", "Hana", "Yusuf", "Ingrid", "Tariq", "Mei",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "García", "Nguyen", "Kim", "Patel", "Okafor", "Müller", "Rossi",
    "Kowalski", "O'Brien", "Haddad", "Tanaka", "Silva", "Andersson", "Dubois", "Cohen",
)  # fmt: skip
_SPECIAL = (("Zoë", "Ñúñez"), ("小龙", "李"), ("Øystein", "Ødegård"))
_SUBJECTS = (
    ("BIO", "Cell Biology"), ("CHEM", "General Chemistry"), ("MATH", "Calculus I"),
    ("HIST", "World History"), ("ENG", "Composition"), ("PHYS", "Mechanics"),
    ("CSE", "Intro to Programming"), ("ECON", "Microeconomics"),
)  # fmt: skip
_EDUCATION = ("Freshman", "Sophomore", "Junior", "Senior")

STUDENTS_MAX = 900
INSTRUCTOR = 900
TEACHING_ASSISTANT = 901


def iso(epoch: float | None) -> str | None:
    """Learn's date-time form: ISO 8601 UTC with milliseconds and ``Z``."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(int(epoch)))


def pk_id(pk: int) -> str:
    """A Learn primary id: ``_<pk>_1``."""
    return f"_{pk}_1"


def pk_of(primary_id: str) -> int | None:
    """The pk of ``_<pk>_1``, or None if the text is not a primary id."""
    parts = primary_id.split("_")
    if len(parts) == 3 and parts[0] == "" and parts[1].isdigit() and parts[2] == "1":
        return int(parts[1])
    return None


def _prune(obj: Any) -> Any:
    """Drop None values (and empty objects they leave) as Learn's serializer does."""
    if isinstance(obj, dict):
        out = {k: _prune(v) for k, v in obj.items() if v is not None}
        return {k: v for k, v in out.items() if v != {}}
    if isinstance(obj, list):
        return [_prune(v) for v in obj]
    return obj


class _Draw:
    """Uniform draws in [0, 1) that are a pure function of a key."""

    __slots__ = ("_values",)

    def __init__(self, *key: object) -> None:
        digest = hashlib.blake2b(repr(key).encode(), digest_size=32).digest()
        self._values = [v / 4_294_967_296 for v in struct.unpack("<8I", digest)]

    def __getitem__(self, index: int) -> float:
        return self._values[index]


def _uuid(*key: object) -> str:
    return hashlib.md5(repr(key).encode()).hexdigest()


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum()) or "user"


@dataclass(frozen=True)
class _Column:
    id: str
    position: int
    kind: str  # total | attempts | manual
    possible: float
    due: int | None
    attempts_allowed: int
    available: bool


@dataclass
class _Course:
    index: int
    course: dict
    users: list[dict]
    memberships: list[dict]
    columns: list[_Column]


class Institution:
    """One synthetic Learn site: the data the emulator serves and, equally, the ground truth."""

    def __init__(
        self,
        *,
        seed: int,
        courses: int,
        students_per_course: int,
        columns_per_course: int = 6,
        meetings_per_course: int = 5,
    ) -> None:
        if courses < 1 or students_per_course < 1:
            raise ValueError("courses and students_per_course must be >= 1")
        if students_per_course > STUDENTS_MAX or courses > 9_000:
            raise ValueError(f"at most {STUDENTS_MAX} students per course and 9,000 courses")
        if not 4 <= columns_per_course <= 99 or not 0 <= meetings_per_course <= 99:
            raise ValueError("need 4..99 grade columns and 0..99 meetings per course")
        self.seed = seed
        self.course_count = courses
        self.students_per_course = students_per_course
        self.columns_per_course = columns_per_course
        self.meetings_per_course = meetings_per_course
        self._build = lru_cache(maxsize=128)(self._build_course)

    # ---- courses -------------------------------------------------------------------------------

    def course_ids(self, *, include_disabled: bool = True) -> list[str]:
        ids = [pk_id(100 + i) for i in range(self.course_count)]
        if include_disabled:
            return ids
        return [c for c in ids if self.course(c)["availability"]["available"] != "Disabled"]

    def _index(self, course_id: str) -> int | None:
        pk = pk_of(course_id)
        if pk is None or not 100 <= pk < 100 + self.course_count:
            return None
        return pk - 100

    def resolve_course(self, ref: str) -> str | None:
        """A path's course reference (primary, ``courseId:``, ``externalId:``, ``uuid:``) → id."""
        if ref.startswith(("courseId:", "externalId:", "uuid:")):
            field, _, value = ref.partition(":")
            for cid in self.course_ids():
                if self.course(cid).get(field) == value:
                    return cid
            return None
        return ref if self._index(ref) is not None else None

    def courses(self) -> list[dict]:
        """Every course (Disabled ones too), in id order: ``GET /v3/courses``."""
        return [self.course(c) for c in self.course_ids()]

    def course(self, course_id: str) -> dict:
        index = self._index(course_id)
        if index is None:
            raise KeyError(course_id)
        return self._build(index).course

    def _course_json(self, i: int) -> dict:
        code, title = _SUBJECTS[i % len(_SUBJECTS)]
        state = i % 10
        spring = state == 2
        start, end = (
            (calendar.timegm((2026, 1, 12, 13, 0, 0)), calendar.timegm((2026, 5, 8, 20, 0, 0)))
            if spring
            else (TERM_START, TERM_END)
        )
        season = "2026SP" if spring else "2026FA"
        created = TERM_START - 60 * _DAY + i * 3600
        return _prune(
            {
                "id": pk_id(100 + i),
                "uuid": _uuid(self.seed, "course", i),
                "externalId": f"{season}.{code}{101 + i}",
                "dataSourceId": DATA_SOURCE_ID,
                "courseId": f"{code}-{101 + i}-{season}",
                "name": f"{title} ({code} {101 + i})",
                "description": f"{title}, section {i + 1}",
                "created": iso(created),
                "modified": iso(created + 30 * _DAY),
                "organization": False,
                "ultraStatus": "Ultra" if i % 2 else "Classic",
                "allowGuests": False,
                "allowObservers": False,
                "closedComplete": spring,
                "termId": SPRING_TERM_ID if spring else TERM_ID,
                "availability": {
                    "available": {1: "No", 3: "Disabled"}.get(state, "Yes"),
                    "duration": {"type": "DateRange", "start": iso(start), "end": iso(end)},
                },
                "enrollment": {"type": "InstructorLed"},
                "locale": {"force": False},
                "hasChildren": False,
                "externalAccessUrl": f"https://learn.example.edu/ultra/courses/{pk_id(100 + i)}",
            }
        )

    # ---- people --------------------------------------------------------------------------------

    def _positions(self) -> list[int]:
        return [*range(self.students_per_course), INSTRUCTOR, TEACHING_ASSISTANT]

    def _user_json(self, i: int, p: int) -> dict:
        pk = 100_000 + 1_000 * i + p
        d = _Draw(self.seed, "user", i, p)
        if p < len(_SPECIAL):
            given, family = _SPECIAL[p]
        else:
            given = _FIRST[int(d[0] * len(_FIRST))]
            family = _LAST[int(d[1] * len(_LAST))]
        student = p < STUDENTS_MAX
        manual = student and p % 9 == 4
        sis = None if manual else f"SIS{pk:07d}"
        user_name = f"{_slug(given)[:1]}{_slug(family)}{pk}"
        created = TERM_START - 90 * _DAY + int(d[2] * 30 * _DAY)
        last_login = ANCHOR - int(d[3] * 20 * _DAY) - 600 if d[4] > 0.1 else None
        return _prune(
            {
                "id": pk_id(pk),
                "uuid": _uuid(self.seed, "user", i, p),
                "externalId": sis,
                "dataSourceId": DATA_SOURCE_ID,
                "userName": user_name,
                "studentId": sis if student else None,
                "educationLevel": _EDUCATION[int(d[5] * 4)] if student else "Unknown",
                "gender": "Unknown",
                "created": iso(created),
                "modified": iso(created + 7 * _DAY),
                "lastLogin": iso(last_login),
                "institutionRoleIds": ["STUDENT" if student else "FACULTY"],
                "systemRoleIds": ["User"],
                "availability": {"available": "Yes"},
                "name": {"given": given, "family": family, "preferredDisplayName": "GivenName"},
                "contact": {"email": f"{user_name}@example.edu"},
            }
        )

    def _membership_json(self, i: int, p: int, course: dict) -> dict:
        d = _Draw(self.seed, "membership", i, p)
        if p == INSTRUCTOR:
            role, available = "Instructor", "Yes"
        elif p == TEACHING_ASSISTANT:
            role, available = "TeachingAssistant", "Yes"
        else:
            role = "Student"
            available = {7: "No", 8: "Disabled"}.get(p % 10, "Yes")
        created = TERM_START - 20 * _DAY + int(d[0] * 10 * _DAY)
        accessed = None
        if available != "Disabled" and d[1] > 0.08:
            # Learn batches lastAccessed; activity in the last five minutes may be missing.
            accessed = ANCHOR - int(d[2] * 14 * _DAY) - 300
        return _prune(
            {
                "id": pk_id(500_000 + 1_000 * i + p),
                "userId": pk_id(100_000 + 1_000 * i + p),
                "courseId": course["id"],
                "dataSourceId": DATA_SOURCE_ID,
                "created": iso(created),
                "modified": iso(created + int(d[3] * 20 * _DAY)),
                "availability": {"available": available},
                "courseRoleId": role,
                "lastAccessed": iso(accessed),
            }
        )

    def users(self) -> list[dict]:
        """Every user of the site (``GET /v1/users``), by id."""
        return [u for cid in self.course_ids() for u in self._build(self._index(cid)).users]

    def user(self, user_id: str) -> dict | None:
        pk = pk_of(user_id)
        if pk is None:
            return None
        i, p = divmod(pk - 100_000, 1_000)
        if pk < 100_000 or i >= self.course_count or p not in self._positions():
            return None
        return self._build(i).users[self._positions().index(p)]

    def memberships(self, course_id: str, *, expand_user: bool = False) -> list[dict]:
        """``GET /v1/courses/{courseId}/users``: every membership, by id."""
        built = self._build(self._index(course_id))
        if not expand_user:
            return built.memberships
        return [{**m, "user": u} for m, u in zip(built.memberships, built.users, strict=True)]

    # ---- gradebook -----------------------------------------------------------------------------

    def _columns_for(self, i: int) -> list[_Column]:
        cols = []
        n = self.columns_per_course
        for c in range(n):
            d = _Draw(self.seed, "column", i, c)
            if c == 0:
                kind, possible, due = "total", 100.0, None
            elif c == n - 2:
                kind, possible, due = "manual", 10.0, None
            else:
                kind = "attempts"
                possible = (10.0, 20.0, 50.0, 100.0)[int(d[0] * 4)]
                due = TERM_START + (7 + 9 * c) * _DAY + 4 * 3600
            cols.append(
                _Column(
                    id=pk_id(7_000 + 100 * i + c),
                    position=c,
                    kind=kind,
                    possible=possible,
                    due=due,
                    attempts_allowed=1 + int(d[1] * 2) if kind == "attempts" else 0,
                    available=c != n - 1,  # the last column is hidden from students
                )
            )
        return cols

    def columns(self, course_id: str) -> list[dict]:
        """``GET /v2/courses/{courseId}/gradebook/columns`` (``GradeColumnV2``), by position."""
        built = self._build(self._index(course_id))
        return [self._column_json(built, col) for col in built.columns]

    def _column_json(self, built: _Course, col: _Column) -> dict:
        created = TERM_START - 10 * _DAY + col.position * 3600
        names = {"total": "Total", "manual": "Participation"}
        name = names.get(col.kind, f"Assignment {col.position}")
        grading_type = {"total": "Calculated", "manual": "Manual"}.get(col.kind, "Attempts")
        return _prune(
            {
                "id": col.id,
                "externalId": f"{built.course['id']}-col-{col.position}",
                "name": name,
                "displayName": name,
                "description": f"{name} of {built.course['courseId']}",
                "externalGrade": col.kind == "total",
                "created": iso(created),
                "modified": iso(created + _DAY),
                "score": {"possible": col.possible},
                "availability": {"available": "Yes" if col.available else "No"},
                "grading": {
                    "type": grading_type,
                    "due": iso(col.due),
                    "attemptsAllowed": col.attempts_allowed if col.kind == "attempts" else None,
                    "scoringModel": "Last" if col.kind == "attempts" else None,
                    "anonymousGrading": {"type": "None"},
                },
                "includeInCalculations": col.kind != "total",
                "showStatisticsToStudents": False,
            }
        )

    def column(self, course_id: str, column_id: str) -> dict | None:
        return next((c for c in self.columns(course_id) if c["id"] == column_id), None)

    def _student_positions(self, *, include_disabled: bool) -> list[int]:
        return [p for p in range(self.students_per_course) if include_disabled or p % 10 != 8]

    def _grade_plan(self, i: int, col: _Column, p: int) -> dict | None:
        """What one student has in one column: None (no record) or the draws that shape it."""
        d = _Draw(self.seed, "grade", i, col.position, p)
        if col.kind == "total":
            return {"state": "graded", "fraction": 0.5 + 0.5 * d[1], "attempts": 0, "d": d}
        if d[0] < 0.08:
            return None
        if d[0] < 0.13:
            return {"state": "exempt", "attempts": 0, "d": d}
        if col.kind == "attempts" and d[0] < 0.2:
            return {"state": "needs_grading", "attempts": 1, "d": d}
        attempts = 1 + int(d[2] * col.attempts_allowed) if col.kind == "attempts" else 0
        return {"state": "graded", "fraction": 0.45 + 0.55 * d[1], "attempts": attempts, "d": d}

    def _attempt_dates(self, col: _Column, count: int, d: _Draw) -> list[int]:
        base = (col.due or TERM_START + 30 * _DAY) - int(d[3] * 3 * _DAY) - 600
        if d[4] < 0.15:  # late
            base = (col.due or base) + 3600 + int(d[5] * 2 * _DAY)
        return [min(base + k * 5 * 3600, ANCHOR - 7200) for k in range(count)]

    def grades(
        self, course_id: str, column_id: str, *, include_disabled: bool = False
    ) -> list[dict]:
        """``GET /v2/courses/{courseId}/gradebook/columns/{columnId}/users`` (``GradeV2``)."""
        i = self._index(course_id)
        built = self._build(i)
        col = next((c for c in built.columns if c.id == column_id), None)
        if col is None:
            return []
        out = []
        for p in self._student_positions(include_disabled=include_disabled):
            grade = self._grade_json(i, col, p)
            if grade is not None:
                out.append(grade)
        return out

    def _grade_json(self, i: int, col: _Column, p: int) -> dict | None:
        plan = self._grade_plan(i, col, p)
        if plan is None:
            return None
        d = plan["d"]
        user_id = pk_id(100_000 + 1_000 * i + p)
        change_index = 1_000_000 * (i + 1) + 1_000 * col.position + p + 1
        obj: dict[str, Any] = {
            "userId": user_id,
            "columnId": col.id,
            "exempt": False,
            "corrupt": False,
            "changeIndex": change_index,
        }
        if plan["state"] == "exempt":
            obj.update(exempt=True, status="Graded")
            return _prune(obj)
        dates = self._attempt_dates(col, max(plan["attempts"], 1), d)
        if plan["attempts"]:
            obj.update(firstRelevantDate=iso(dates[0]), lastRelevantDate=iso(dates[-1]))
        if plan["state"] == "needs_grading":
            obj.update(status="NeedsGrading")
            return _prune(obj)
        if col.kind == "total":
            percent = round(plan["fraction"] * 100, 2)
            text = f"{percent:.2f}%"
            display = {"scaleType": "Percent", "score": percent, "possible": 100.0, "text": text}
            score = percent
        else:
            score = round(col.possible * plan["fraction"], 2)
            text = f"{score:.2f}".rstrip("0").rstrip(".")
            display = {"scaleType": "Score", "score": score, "possible": col.possible, "text": text}
        obj.update(status="Graded", displayGrade=display, text=text, score=score)
        if col.kind == "manual":
            obj["lastRelevantDate"] = iso(TERM_START + 40 * _DAY + int(d[6] * 30 * _DAY))
        return _prune(obj)

    def attempts(self, course_id: str, column_id: str) -> list[dict]:
        """``GET /v2/courses/{courseId}/gradebook/columns/{columnId}/attempts`` (``AttemptV2``)."""
        i = self._index(course_id)
        built = self._build(i)
        col = next((c for c in built.columns if c.id == column_id), None)
        if col is None or col.kind != "attempts":
            return []
        out = []
        for p in self._student_positions(include_disabled=True):
            plan = self._grade_plan(i, col, p)
            if plan is None or not plan["attempts"]:
                continue
            dates = self._attempt_dates(col, plan["attempts"], plan["d"])
            for k, at in enumerate(dates):
                last = k == len(dates) - 1
                obj: dict[str, Any] = {
                    "id": pk_id(20_000_000 + 100_000 * i + 1_000 * col.position + 4 * p + k),
                    "userId": pk_id(100_000 + 1_000 * i + p),
                    "groupOverride": False,
                    "readyToPost": False,
                    "exempt": False,
                    "created": iso(at - 1800),
                    "attemptDate": iso(at),
                    "modified": iso(min(at + 3600, ANCHOR - 60)),
                }
                if plan["state"] == "needs_grading" or (last and plan["state"] != "graded"):
                    obj["status"] = "NeedsGrading"
                else:
                    fraction = plan["fraction"] if last else plan["fraction"] * 0.8
                    score = round(col.possible * fraction, 2)
                    text = f"{score:.2f}".rstrip("0").rstrip(".")
                    obj.update(
                        status="Completed",
                        score=score,
                        text=text,
                        displayGrade={
                            "scaleType": "Score",
                            "score": score,
                            "possible": col.possible,
                            "text": text,
                        },
                    )
                out.append(_prune(obj))
        return out

    def user_grades(self, course_id: str, user_id: str, *, v1: bool = False) -> list[dict]:
        """``GET /v2|v1/courses/{courseId}/gradebook/users/{userId}``: one user's grades.

        v1 ``Grade`` has no ``displayGrade``, ``changeIndex`` or relevant dates (spec)."""
        i = self._index(course_id)
        pk = pk_of(user_id)
        if pk is None:
            return []
        p = pk - 100_000 - 1_000 * i
        if not 0 <= p < self.students_per_course:
            return []
        out = []
        for col in self._build(i).columns:
            grade = self._grade_json(i, col, p)
            if grade is None:
                continue
            if v1:
                grade = {
                    k: v
                    for k, v in grade.items()
                    if k not in ("displayGrade", "changeIndex", "firstRelevantDate",
                                 "lastRelevantDate", "gradeNotationId")
                }  # fmt: skip
            out.append(grade)
        return out

    # ---- attendance ----------------------------------------------------------------------------

    def meetings(self, course_id: str) -> list[dict]:
        """``GET /v1/courses/{courseId}/meetings`` (``CourseMeeting``: int64 ids)."""
        i = self._index(course_id)
        built = self._build(i)
        out = []
        for k in range(self.meetings_per_course):
            start = TERM_START + (2 + 7 * k) * _DAY + 2 * 3600
            out.append(
                {
                    "id": 800_000 + 100 * i + k,
                    "courseId": built.course["id"],
                    "title": f"Class meeting {k + 1}",
                    "description": f"Week {k + 1}",
                    "start": iso(start),
                    "end": iso(start + 5400),
                }
            )
        return out

    def meeting(self, course_id: str, meeting_id: int) -> dict | None:
        return next((m for m in self.meetings(course_id) if m["id"] == meeting_id), None)

    def meeting_users(self, course_id: str, meeting_id: int) -> list[dict]:
        """``GET /v1/courses/{courseId}/meetings/{meetingId}/users`` (``AttendanceRecord``)."""
        i = self._index(course_id)
        meeting = self.meeting(course_id, meeting_id)
        if meeting is None:
            return []
        k = meeting_id - 800_000 - 100 * i
        instructor = pk_id(100_000 + 1_000 * i + INSTRUCTOR)
        taken = calendar.timegm(time.strptime(meeting["end"], "%Y-%m-%dT%H:%M:%S.000Z"))
        out = []
        for p in self._student_positions(include_disabled=False):
            d = _Draw(self.seed, "attendance", i, k, p)
            if d[0] < 0.05:
                continue  # not taken: no record (unmarked is not absent)
            r = d[1]
            status = (
                "Present" if r < 0.75 else "Late" if r < 0.85 else "Absent" if r < 0.95
                else "Excused"
            )  # fmt: skip
            out.append(
                {
                    "id": 90_000_000 + 100_000 * i + 1_000 * k + p,
                    "meetingId": str(meeting_id),
                    "userId": pk_id(100_000 + 1_000 * i + p),
                    "status": status,
                    "modifiedByUserId": instructor,
                    "createdTime": iso(taken),
                    "modifiedTime": iso(taken + int(d[2] * 3600)),
                }
            )
        return out

    def user_attendance(self, user_id: str) -> list[dict]:
        """``GET /v1/courses/{courseId}/meetings/users/{userId}``: every course (spec note)."""
        user = self.user(user_id)
        if user is None:
            return []
        i = (pk_of(user_id) - 100_000) // 1_000
        cid = pk_id(100 + i)
        return [
            r
            for m in self.meetings(cid)
            for r in self.meeting_users(cid, m["id"])
            if r["userId"] == user_id
        ]

    # ---- building --------------------------------------------------------------------------------

    def _build_course(self, i: int) -> _Course:
        course = self._course_json(i)
        positions = self._positions()
        users = [self._user_json(i, p) for p in positions]
        memberships = [self._membership_json(i, p, course) for p in positions]
        return _Course(i, course, users, memberships, self._columns_for(i))

    # ---- PII and counts --------------------------------------------------------------------------

    def pii_values(self) -> set[str]:
        """Every full name, user name, email, external id and student id string on the site."""
        values: set[str] = set()
        for user in self.users():
            values.add(user["userName"])
            values.add(user["contact"]["email"])
            values.add(f"{user['name']['given']} {user['name']['family']}")
            for key in ("externalId", "studentId"):
                if user.get(key):
                    values.add(user[key])
        return values

    def counts(self) -> dict[str, int]:
        ids = self.course_ids()
        return {
            "courses": len(ids),
            "memberships": sum(len(self.memberships(c)) for c in ids),
            "columns": sum(len(self.columns(c)) for c in ids),
            "grades": sum(len(self.grades(c, col["id"])) for c in ids for col in self.columns(c)),
            "attempts": sum(
                len(self.attempts(c, col["id"])) for c in ids for col in self.columns(c)
            ),
            "meetings": sum(len(self.meetings(c)) for c in ids),
            "attendance": sum(
                len(self.meeting_users(c, m["id"])) for c in ids for m in self.meetings(c)
            ),
        }


def build_institution(
    *,
    seed: int,
    courses: int,
    students_per_course: int,
    columns_per_course: int = 6,
    meetings_per_course: int = 5,
) -> Institution:
    """The site for a seed; the same arguments always give the same data."""
    return Institution(
        seed=seed,
        courses=courses,
        students_per_course=students_per_course,
        columns_per_course=columns_per_course,
        meetings_per_course=meetings_per_course,
    )
