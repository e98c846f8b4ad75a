"""A seeded synthetic Canvas institution that knows its own ground truth.

Every object is a pure function of ``(seed, course, ...)``, so the same seed always yields the
same institution, byte for byte, and a course with 1,000 students x 200 assignments (200k
submissions) never has to exist in memory at once: submissions are generated on demand from
their id (``iter_submissions(course_id, start_id=...)``), which is also the key the
``students/submissions`` endpoint bookmarks on (canvas-api.md §1.2, §2.7). Rosters (sections,
users, enrollments, assignments) are small and cached per course.

The JSON objects returned here are exactly what the emulator serves, so tests and benchmarks can
compare what a connector loaded with what the "LMS" holds.

Choices where canvas-api.md marks Canvas behaviour as unverified, documented once here:

- IDs are integers, as real Canvas emits them. (One recorded file,
  ``courses__862539__users_include_enrollments_search_term_jav``, carries ids as strings; it
  comes from an old test instance and is not copied.)
- Students whose enrollment is ``active``, ``invited``, ``completed`` or ``inactive`` have a
  submission (placeholder or real) for every published assignment; ``deleted``, ``rejected`` and
  ``creation_pending`` students have none.
- Course grades on student enrollments are drawn per student, not recomputed from submissions.
- Page views belong to the one course the user is enrolled in (users are not shared between
  courses), newest first.
"""

from __future__ import annotations

import calendar
import hashlib
import struct
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

ROOT_ACCOUNT_ID = 1
HTML_HOST = "https://canvas.example.edu"

# The fixed "now" of the synthetic institution: every activity timestamp is before it.
ANCHOR = calendar.timegm((2026, 11, 20, 0, 0, 0))
_DAY = 86_400

STUDENT_ENROLLMENT_STATES = (
    "active",
    "invited",
    "completed",
    "inactive",
    "deleted",
    "rejected",
    "creation_pending",
)
# States whose students carry submissions (see module docstring).
SUBMITTING_STATES = frozenset({"active", "invited", "completed", "inactive"})
# The values `courses/:id/users?enrollment_state[]=` accepts (canvas-api.md §2.3).
USER_LIST_STATES = ("active", "invited", "rejected", "completed", "inactive")

GRADING_TYPES = ("points", "percent", "letter_grade", "pass_fail", "not_graded", "gpa_scale")
ROLL_CALL_NAME = "Roll Call Attendance"

# Canvas's default grading scheme (lower bounds, percent).
_LETTER_SCHEME = (
    (94.0, "A"),
    (90.0, "A-"),
    (87.0, "B+"),
    (84.0, "B"),
    (80.0, "B-"),
    (77.0, "C+"),
    (74.0, "C"),
    (70.0, "C-"),
    (67.0, "D+"),
    (64.0, "D"),
    (61.0, "D-"),
    (0.0, "F"),
)

_FIRST = (
    "Ava", "Liam", "Noah", "Maya", "Ethan", "Sofia", "Lucas", "Amara", "Kenji", "Priya",
    "Mateo", "Fatima", "Oliver", "Chloe", "Diego", "Hana", "Yusuf", "Ingrid", "Tariq", "Mei",
    "José", "Aoife", "Siobhán", "Björn", "Renée", "Ngozi", "Dmitri", "Léa", "Søren", "Camila",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "García", "Nguyen", "Kim", "Patel", "Okafor", "Müller", "Rossi",
    "Kowalski", "O'Brien", "Haddad", "Tanaka", "Silva", "Andersson", "Dubois", "Ivanova",
    "Cohen", "Mendoza", "Novák", "Schmidt", "Ahmed", "Lee", "Brown", "Walker",
)  # fmt: skip
# (name, sortable_name): the first students of every course, so unicode always reaches connectors.
_SPECIAL_NAMES = (("Zoë Ñúñez", "Ñúñez, Zoë"), ("李小龙", "李小龙"), ("Øystein", "Øystein"))
_SUBJECTS = (
    ("BIO", "Cell Biology"), ("CHEM", "General Chemistry"), ("MATH", "Calculus I"),
    ("HIST", "World History"), ("ENG", "Composition"), ("PHYS", "Mechanics"),
    ("CSE", "Intro to Programming"), ("ECON", "Microeconomics"), ("ART", "Drawing"),
    ("MUS", "Music Theory"),
)  # fmt: skip

# Terms: (id, name, sis_term_id, start, end). Courses in the Spring term are concluded.
_TERMS = (
    (1, "Default Term", None, None, None),
    (2, "Spring 2026", "2026-spring", calendar.timegm((2026, 1, 12, 8, 0, 0)),
     calendar.timegm((2026, 5, 8, 7, 0, 0))),
    (3, "Fall 2026", "2026-fall", calendar.timegm((2026, 8, 24, 7, 0, 0)),
     calendar.timegm((2026, 12, 18, 8, 0, 0))),
)  # fmt: skip
_FALL_TERM_ID = 3
_SPRING_TERM_ID = 2


def iso(epoch: float | None) -> str | None:
    """Format epoch seconds as Canvas does: ISO 8601 UTC with a ``Z`` (canvas-api.md §1.1)."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def _fmt_number(value: float) -> str:
    """Render a score the way Canvas renders points grades: no trailing zeros ("13.5", "85")."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def letter_grade(percent: float) -> str:
    """The default Canvas grading-scheme letter for a percentage."""
    for bound, letter in _LETTER_SCHEME:
        if percent >= bound:
            return letter
    return "F"


class _Draw:
    """Uniform draws in [0, 1) that are a pure function of a key (no shared RNG state)."""

    __slots__ = ("_values",)

    def __init__(self, *key: object) -> None:
        digest = hashlib.blake2b(repr(key).encode(), digest_size=32).digest()
        self._values = [v / 4_294_967_296 for v in struct.unpack("<8I", digest)]

    def __getitem__(self, index: int) -> float:
        return self._values[index]

    def pick(self, index: int, options: tuple | list):
        return options[int(self._values[index] * len(options))]

    def between(self, index: int, low: float, high: float) -> float:
        return low + (high - low) * self._values[index]


@dataclass(frozen=True)
class CourseSpec:
    """Where one course sits in the institution; everything else derives from it."""

    index: int
    id: int
    workflow_state: str
    term_id: int


@dataclass(frozen=True)
class _Assignment:
    """The fields submission generation needs, precomputed once per assignment."""

    id: int
    position: int
    grading_type: str
    points_possible: float | None
    due_at: int | None
    unlock_at: int
    published: bool
    roll_call: bool


@dataclass(frozen=True)
class _Student:
    user_id: int
    state: str


@dataclass
class _Roster:
    """The materialized, small part of a course (everything but submissions and page views)."""

    course: dict
    sections: list[dict]
    users: list[dict]  # full User objects, every enrollment state
    enrollments: list[dict]  # full Enrollment objects, every state
    assignments: list[dict]
    assignment_specs: list[_Assignment]
    published: list[_Assignment]  # every published assignment ever: positions fix submission ids
    submitters: list[_Student]  # every original submitter: positions fix submission ids
    user_states: dict[int, list[str]]
    # The overlay of apply_changes (empty for a pristine institution):
    removed: frozenset[int] = frozenset()  # assignment ids deleted
    gone: frozenset[int] = frozenset()  # submitters whose enrollment was deleted
    added: list[_Student] = field(default_factory=list)  # students added, in order
    view_states: dict[int, list[str]] = field(default_factory=dict)  # states before changes


@dataclass
class Changes:
    """What :meth:`Institution.apply_changes` did, cumulatively; the emulator's ground truth is the
    seeded institution with this overlay applied (``Institution.changes``)."""

    submissions: dict[int, dict] = field(default_factory=dict)  # submission id → new fields
    deleted_enrollments: dict[int, str] = field(default_factory=dict)  # enrollment id → at
    removed_assignments: dict[int, str] = field(default_factory=dict)  # assignment id → at
    added_students: dict[int, int] = field(default_factory=dict)  # course id → how many
    students_added_at: dict[int, str] = field(default_factory=dict)  # added user id → at

    def copy(self) -> Changes:
        return Changes(
            dict(self.submissions),
            dict(self.deleted_enrollments),
            dict(self.removed_assignments),
            dict(self.added_students),
            dict(self.students_added_at),
        )


class Institution:
    """One synthetic Canvas root account: the data and, equally, the ground truth.

    Methods return the JSON objects (``dict``) the emulator serves. PII lives in User objects
    (``name``, ``short_name``, ``sortable_name``, ``email``, ``login_id``, ``sis_login_id``,
    ``sis_user_id``), in the ``user`` embedded in enrollments, and in enrollments'
    ``sis_user_id``; ``pii_values()`` lists every such string.
    """

    def __init__(
        self, *, seed: int, courses: int, students_per_course: int, assignments_per_course: int
    ) -> None:
        if courses < 1 or students_per_course < 1 or assignments_per_course < 1:
            raise ValueError("courses, students_per_course and assignments_per_course must be >= 1")
        if students_per_course > 90_000 or assignments_per_course > 9_000:
            raise ValueError("at most 90,000 students and 9,000 assignments per course")
        if students_per_course * (assignments_per_course + 1) >= 10_000_000:
            raise ValueError("a course may hold at most 10 million submissions")
        self.seed = seed
        self.students_per_course = students_per_course
        self.assignments_per_course = assignments_per_course
        self._specs = [self._course_spec(i) for i in range(courses)]
        self._by_id = {spec.id: spec for spec in self._specs}
        self._roster = lru_cache(maxsize=64)(self._build_roster)
        self.changes = Changes()
        self._changes_lock = threading.Lock()

    # ---- identity -----------------------------------------------------------------------------

    @staticmethod
    def _course_spec(index: int) -> CourseSpec:
        # canvas-api.md §2.2: API states are unpublished|available|completed|deleted.
        state = {1: "unpublished", 2: "completed", 3: "deleted"}.get(index % 10, "available")
        term = _SPRING_TERM_ID if state == "completed" else _FALL_TERM_ID
        return CourseSpec(index=index, id=101 + index, workflow_state=state, term_id=term)

    def course_ids(self, *, include_deleted: bool = True) -> list[int]:
        """All course ids, in id order."""
        return [s.id for s in self._specs if include_deleted or s.workflow_state != "deleted"]

    def course_spec(self, course_id: int) -> CourseSpec | None:
        return self._by_id.get(course_id)

    # ---- account, terms and courses ----

    def account(self) -> dict:
        """The root Account object (`GET accounts/1`)."""
        return {
            "id": ROOT_ACCOUNT_ID,
            "name": "Example University",
            "workflow_state": "active",
            "parent_account_id": None,
            "root_account_id": None,
            "uuid": hashlib.sha1(f"account:{self.seed}".encode()).hexdigest()[:40],
            "default_time_zone": "America/New_York",
            "sis_account_id": None,
            "integration_id": None,
            "sis_import_id": None,
        }

    # ---- terms and courses --------------------------------------------------------------------

    def terms(self) -> list[dict]:
        """EnrollmentTerm objects as `accounts/1/terms` serves them inside `enrollment_terms`."""
        return [
            {
                "id": tid,
                "name": name,
                "start_at": iso(start),
                "end_at": iso(end),
                "created_at": "2025-06-01T12:00:00Z",
                "workflow_state": "active",
                "grading_period_group_id": None,
                "sis_term_id": sis,
                "sis_import_id": None,
            }
            for tid, name, sis, start, end in _TERMS
        ]

    def term(self, term_id: int) -> dict:
        """The compact term embedded by `include[]=term` (canvas-api.md §2.2)."""
        full = next(t for t in self.terms() if t["id"] == term_id)
        return {k: full[k] for k in ("id", "name", "start_at", "end_at", "sis_term_id")}

    def courses(self, *, include_term: bool = True) -> list[dict]:
        """Every course (deleted ones too), as `accounts/1/courses?state[]=all&include[]=term`."""
        return [self.course(cid, include_term=include_term) for cid in self.course_ids()]

    def course(self, course_id: int, *, include_term: bool = False) -> dict:
        obj = dict(self._roster(course_id).course)
        if include_term:
            obj["term"] = self.term(obj["enrollment_term_id"])
        return obj

    def _term_bounds(self, spec: CourseSpec) -> tuple[int, int]:
        _, _, _, start, end = next(t for t in _TERMS if t[0] == spec.term_id)
        return start, min(end, ANCHOR)

    def _course_json(self, spec: CourseSpec) -> dict:
        subject, title = _SUBJECTS[spec.index % len(_SUBJECTS)]
        number = 100 + (spec.index // len(_SUBJECTS)) * 10 + spec.index % 7
        code = f"{subject} {number}"
        term_sis = next(t[2] for t in _TERMS if t[0] == spec.term_id)
        start, end = next((t[3], t[4]) for t in _TERMS if t[0] == spec.term_id)
        uuid = hashlib.sha1(f"course:{self.seed}:{spec.id}".encode()).hexdigest()[:40]
        return {
            "id": spec.id,
            "name": f"{code}: {title}",
            "account_id": ROOT_ACCOUNT_ID,
            "uuid": uuid,
            "start_at": iso(start),
            "grading_standard_id": None,
            "is_public": False,
            "created_at": iso(start - 30 * _DAY),
            "course_code": code,
            "default_view": "modules",
            "root_account_id": ROOT_ACCOUNT_ID,
            "enrollment_term_id": spec.term_id,
            "license": "private",
            "grade_passback_setting": None,
            "end_at": iso(end),
            "public_syllabus": False,
            "public_syllabus_to_auth": False,
            "storage_quota_mb": 500,
            "is_public_to_auth_users": False,
            "homeroom_course": False,
            "course_color": None,
            "friendly_name": None,
            "apply_assignment_group_weights": False,
            "calendar": {"ics": f"{HTML_HOST}/feeds/calendars/course_{uuid}.ics"},
            "time_zone": "America/New_York",
            "blueprint": False,
            "template": False,
            "sis_course_id": f"{term_sis}-{subject}-{number}-A",
            "sis_import_id": None,
            "integration_id": None,
            "enrollments": [],
            "hide_final_grades": False,
            "workflow_state": spec.workflow_state,
            "restrict_enrollments_to_course_dates": False,
        }

    # ---- roster -------------------------------------------------------------------------------

    def sections(self, course_id: int) -> list[dict]:
        """Section objects, as `courses/:id/sections` serves them (without include[]=students)."""
        return self._roster(course_id).sections

    def users(
        self, course_id: int, *, enrollment_states: tuple[str, ...] = USER_LIST_STATES
    ) -> list[dict]:
        """User objects (with email/login_id/sis_user_id) ordered by sortable name, id.

        Defaults to every state `courses/:id/users` can list (canvas-api.md §2.3); users whose
        only enrollment is deleted or creation_pending are not listable there.
        """
        roster = self._roster(course_id)
        wanted = set(enrollment_states)
        return [u for u in roster.users if wanted.intersection(roster.user_states[u["id"]])]

    def enrollments(self, course_id: int) -> list[dict]:
        """Every Enrollment (all seven states) ordered by sortable name, id (the bookmark key)."""
        return self._roster(course_id).enrollments

    def assignments(self, course_id: int) -> list[dict]:
        """Every Assignment, unpublished included, ordered by position."""
        return self._roster(course_id).assignments

    def _build_roster(self, course_id: int) -> _Roster:
        spec = self._by_id[course_id]
        changes = self.changes
        course = self._course_json(spec)
        sections = self._sections_json(spec, course)
        people = self._people(spec)
        submitters = [
            _Student(user["id"], state)
            for user, etype, state, _, _ in people
            if etype == "StudentEnrollment" and state in SUBMITTING_STATES
        ]
        view_states: dict[int, list[str]] = {}
        for user, _, state, _, _ in people:
            view_states.setdefault(user["id"], []).append(state)
        added = [
            _Student(_user_base(spec.index) + _ADDED_OFFSET + k, "active")
            for k in range(changes.added_students.get(course_id, 0))
        ]
        n_sections = len(sections)
        for k, student in enumerate(added):
            user = self._user_json(spec, student.user_id, 1000 + k, "student")
            people.append((user, "StudentEnrollment", "active", k % n_sections, None))
        user_states: dict[int, list[str]] = {}
        enrollments = []
        gone = set()
        for n, (user, etype, state, section_idx, associated) in enumerate(people):
            enrollment = self._enrollment_json(
                spec, course, sections[section_idx], n, user, etype, state, associated
            )
            deleted_at = changes.deleted_enrollments.get(enrollment["id"])
            if deleted_at is not None:
                # Deleted in Canvas: state and updated_at change; history fields stay.
                enrollment.update(enrollment_state="deleted", updated_at=deleted_at)
                state = "deleted"
                gone.add(user["id"])
            user_states.setdefault(user["id"], []).append(state)
            enrollments.append(enrollment)
        users = sorted({u["id"]: u for u, *_ in people}.values(), key=_name_key)
        enrollments.sort(key=lambda e: (e["user"]["sortable_name"], e["id"]))
        specs = self._assignment_specs(spec)
        removed = frozenset(a.id for a in specs if a.id in changes.removed_assignments)
        assignments = [self._assignment_json(spec, a) for a in specs if a.id not in removed]
        return _Roster(
            course=course,
            sections=sections,
            users=users,
            enrollments=enrollments,
            assignments=assignments,
            assignment_specs=specs,
            published=[a for a in specs if a.published],
            submitters=submitters,
            user_states=user_states,
            removed=removed,
            gone=frozenset(gone),
            added=added,
            view_states=view_states,
        )

    @staticmethod
    def _sections_json(spec: CourseSpec, course: dict) -> list[dict]:
        count = 2 + spec.index % 2
        return [
            {
                "id": 2000 + spec.index * 10 + k,
                "course_id": spec.id,
                "name": f"{course['course_code']} {chr(ord('A') + k)}",
                "start_at": None,
                "end_at": None,
                "created_at": course["created_at"],
                "restrict_enrollments_to_section_dates": False,
                "nonxlist_course_id": None,
                "sis_section_id": f"{course['sis_course_id']}-{chr(ord('A') + k)}",
                "sis_course_id": course["sis_course_id"],
                "integration_id": None,
                "sis_import_id": None,
            }
            for k in range(count)
        ]

    def _people(self, spec: CourseSpec) -> list[tuple[dict, str, str, int, int | None]]:
        """(user, enrollment type, state, section index, associated user) for every enrollment."""
        m = self.students_per_course
        base = _user_base(spec.index)
        n_sections = 2 + spec.index % 2
        special_states = STUDENT_ENROLLMENT_STATES[1:] if m >= 8 else ()
        people = []
        for s in range(m):
            from_end = m - 1 - s
            state = special_states[from_end] if from_end < len(special_states) else "active"
            if spec.workflow_state == "completed" and state == "active":
                state = "completed"
            user = self._user_json(spec, base + s, s, "student")
            people.append((user, "StudentEnrollment", state, s % n_sections, None))
        first_student = base
        staff = (
            ("TeacherEnrollment", "teacher", "active", None),
            ("TaEnrollment", "ta", "active", None),
            ("ObserverEnrollment", "observer", "active", first_student),
        )
        for k, (etype, kind, state, associated) in enumerate(staff):
            if spec.workflow_state == "completed":
                state = "completed"
            user = self._user_json(spec, base + _STAFF_OFFSET + k, m + k, kind)
            people.append((user, etype, state, 0, associated))
        return people

    def _user_json(self, spec: CourseSpec, user_id: int, ordinal: int, kind: str) -> dict:
        draw = _Draw(self.seed, "user", user_id)
        if kind == "student" and ordinal < len(_SPECIAL_NAMES):
            name, sortable = _SPECIAL_NAMES[ordinal]
        else:
            first, last = draw.pick(0, _FIRST), draw.pick(1, _LAST)
            name, sortable = f"{first} {last}", f"{last}, {first}"
        slug = _ascii_slug(name) or "user"
        login = f"{slug}{user_id}"
        domain = "students.example.edu" if kind == "student" else "example.edu"
        has_sis = draw[2] >= 0.15
        sis = hashlib.sha1(f"sis:{self.seed}:{user_id}".encode()).hexdigest()[:32].upper()
        return {
            "id": user_id,
            "name": name,
            "created_at": iso(ANCHOR - 400 * _DAY + int(draw[3] * 200 * _DAY)),
            "sortable_name": sortable,
            "short_name": name,
            "sis_user_id": sis if has_sis else None,
            "integration_id": None,
            "sis_import_id": 7 if has_sis else None,
            "sis_login_id": login,
            "login_id": login,
            "email": f"{login}@{domain}",
        }

    def _enrollment_json(
        self,
        spec: CourseSpec,
        course: dict,
        section: dict,
        n: int,
        user: dict,
        etype: str,
        state: str,
        associated: int | None,
    ) -> dict:
        eid = 500_000 + spec.index * 100_000 + n
        draw = _Draw(self.seed, "enrollment", eid)
        term_start, term_end = self._term_bounds(spec)
        active = state in ("active", "completed", "inactive")
        last_activity = term_start + int(draw[0] * (term_end - term_start)) if active else None
        total_activity = int(draw[1] * 90_000) if active else 0
        # canvas-api.md §2.11: last_attended_at is set only by attendance tools, for some students.
        attended = (
            iso(term_start + int(draw[2] * (term_end - term_start)))
            if etype == "StudentEnrollment" and active and draw[3] < 0.4
            else None
        )
        created = term_start - 14 * _DAY + int(draw[4] * 7 * _DAY)
        embedded_user = {
            k: user[k]
            for k in (
                "id",
                "name",
                "created_at",
                "sortable_name",
                "short_name",
                "sis_user_id",
                "integration_id",
                "login_id",
                "sis_login_id",
            )
        }
        obj = {
            "id": eid,
            "user_id": user["id"],
            "course_id": spec.id,
            "type": etype,
            "created_at": iso(created),
            "updated_at": iso(created + int(draw[5] * 30 * _DAY)),
            "associated_user_id": associated,
            "start_at": None,
            "end_at": None,
            "course_section_id": section["id"],
            "root_account_id": ROOT_ACCOUNT_ID,
            "limit_privileges_to_course_section": False,
            "enrollment_state": state,
            "role": etype,
            "role_id": _ROLE_IDS[etype],
            "last_activity_at": iso(last_activity),
            "last_attended_at": attended,
            "total_activity_time": total_activity,
            "sis_import_id": 7 if user["sis_user_id"] else None,
            "sis_account_id": None,
            "sis_course_id": course["sis_course_id"],
            "course_integration_id": None,
            "sis_section_id": section["sis_section_id"],
            "section_integration_id": None,
            "sis_user_id": user["sis_user_id"],
            "html_url": f"{HTML_HOST}/courses/{spec.id}/users/{user['id']}",
        }
        if etype == "StudentEnrollment":
            obj["grades"] = self._grades_json(spec, user["id"], state, draw)
        obj["user"] = embedded_user
        return obj

    def _grades_json(self, spec: CourseSpec, user_id: int, state: str, draw: _Draw) -> dict:
        graded = state in ("active", "completed", "inactive")
        current = round(draw.between(6, 52.0, 99.5), 2) if graded else None
        final = round(current * draw.between(7, 0.75, 1.0), 2) if current is not None else None
        return {
            "html_url": f"{HTML_HOST}/courses/{spec.id}/grades/{user_id}",
            "current_grade": letter_grade(current) if current is not None else None,
            "current_score": current,
            "final_grade": letter_grade(final) if final is not None else None,
            "final_score": final,
            "unposted_current_grade": letter_grade(current) if current is not None else None,
            "unposted_current_score": current,
            "unposted_final_grade": letter_grade(final) if final is not None else None,
            "unposted_final_score": final,
        }

    # ---- assignments --------------------------------------------------------------------------

    def _assignment_specs(self, spec: CourseSpec) -> list[_Assignment]:
        """Published assignments first (Roll Call, then one of each grading type), then one
        unpublished. `assignments_per_course` counts the published ones."""
        start, end = self._term_bounds(spec)
        n = self.assignments_per_course
        first_due = start + 7 * _DAY
        spacing = max(3600, (end - 5 * _DAY - first_due) // max(n, 1))
        cycle = ("points", "letter_grade", "pass_fail", "percent", "gpa_scale", "not_graded")
        specs = []
        for j in range(n + 1):
            aid = 3_000_000 + spec.index * 10_000 + j
            draw = _Draw(self.seed, "assignment", aid)
            roll_call = j == 0
            published = j < n
            if roll_call:
                gtype, points = "percent", 100.0
            elif j <= len(cycle):
                gtype = cycle[j - 1]
                points = float(10 * (1 + int(draw[0] * 10)))
            else:
                gtype = "points" if draw[1] < 0.6 else draw.pick(2, cycle)
                points = float(10 * (1 + int(draw[0] * 10)))
            if j == len(cycle) + 1:  # a points assignment with no points possible
                gtype, points = "points", None
            due = first_due + j * spacing if j % 5 != 4 and published else None
            specs.append(
                _Assignment(
                    id=aid,
                    position=j + 1,
                    grading_type=gtype,
                    points_possible=points,
                    due_at=due,
                    unlock_at=start,
                    published=published,
                    roll_call=roll_call,
                )
            )
        return specs

    def _assignment_json(self, spec: CourseSpec, a: _Assignment) -> dict:
        if a.roll_call:
            name, sub_types = ROLL_CALL_NAME, ["external_tool"]
        elif a.grading_type == "not_graded":
            name, sub_types = f"Reading {a.position}", ["not_graded"]
        else:
            name, sub_types = f"Assignment {a.position}", ["online_text_entry", "online_upload"]
        obj = {
            "id": a.id,
            "name": name,
            "description": "" if a.roll_call else f"<p>{name} instructions</p>",
            "created_at": iso(a.unlock_at - 7 * _DAY),
            "updated_at": iso(a.unlock_at - 6 * _DAY),
            "due_at": iso(a.due_at),
            "lock_at": None,
            "unlock_at": iso(a.unlock_at),
            "has_overrides": False,
            "course_id": spec.id,
            "html_url": f"{HTML_HOST}/courses/{spec.id}/assignments/{a.id}",
            "submissions_download_url": (
                f"{HTML_HOST}/courses/{spec.id}/assignments/{a.id}/submissions?zip=1"
            ),
            "assignment_group_id": 4000 + spec.index,
            "due_date_required": False,
            "max_name_length": 255,
            "turnitin_enabled": False,
            "vericite_enabled": False,
            "grade_group_students_individually": False,
            "peer_reviews": False,
            "automatic_peer_reviews": False,
            "group_category_id": None,
            "needs_grading_count": 0,
            "position": a.position,
            "post_to_sis": False,
            "integration_id": None,
            "integration_data": "",  # a string in recorded Canvas payloads
            "points_possible": a.points_possible,
            "submission_types": sub_types,
            "has_submitted_submissions": a.published and a.grading_type != "not_graded",
            "grading_type": a.grading_type,
            "grading_standard_id": None,
            "published": a.published,
            "unpublishable": not a.published,
            "only_visible_to_overrides": False,
            "locked_for_user": False,
            "muted": False,
            "anonymous_submissions": False,
            "omit_from_final_grade": False,
            "workflow_state": "published" if a.published else "unpublished",
        }
        if a.roll_call:
            obj["external_tool_tag_attributes"] = {
                "url": "https://rollcall.instructure.com/launch",
                "new_tab": False,
            }
        return obj

    # ---- submissions --------------------------------------------------------------------------

    def submission_count(self, course_id: int) -> int:
        """How many submissions `students/submissions?student_ids[]=all` lists for the course."""
        roster = self._roster(course_id)
        live = [a for a in roster.published if a.id not in roster.removed]
        students = [s for s in roster.submitters if s.user_id not in roster.gone]
        return len(live) * (len(students) + len(roster.added))

    def submission_id_bounds(self, course_id: int) -> tuple[int, int]:
        """(first id, one past the last id) of the course's submissions."""
        roster = self._roster(course_id)
        base = 100_000_000 + self._by_id[course_id].index * 10_000_000
        width = len(roster.published)
        return base, base + width * (len(roster.submitters) + len(roster.added))

    def iter_submissions(
        self,
        course_id: int,
        *,
        start_id: int | None = None,
        assignment_ids: frozenset[int] | None = None,
        student_ids: frozenset[int] | None = None,
    ) -> Iterator[dict]:
        """Submissions of published assignments in id order, generated one at a time.

        Ids are ``base + assignment_position * students + student_position`` for the seeded
        students, then ``added_base + added_position * assignments + assignment_position`` for
        students added by :meth:`apply_changes`; deleted assignments and students whose
        enrollment was deleted leave gaps, so no id ever changes. ``start_id`` (inclusive) lets
        a bookmarked page start without generating what came before it.
        """
        roster = self._roster(course_id)
        base = 100_000_000 + self._by_id[course_id].index * 10_000_000
        width = len(roster.submitters)
        n_assign = len(roster.published)
        first = base if start_id is None else max(base, start_id)

        def wanted_assignment(a: _Assignment) -> bool:
            if a.id in roster.removed:
                return False
            return assignment_ids is None or a.id in assignment_ids

        def wanted_student(st: _Student) -> bool:
            if st.user_id in roster.gone:
                return False
            return student_ids is None or st.user_id in student_ids

        if width:
            first_a, first_s = divmod(max(first - base, 0), width)
            # Filters skip whole assignment blocks and unwanted students without generating them.
            students = [(p, st) for p, st in enumerate(roster.submitters) if wanted_student(st)]
            for a_pos in range(first_a, n_assign):
                assignment = roster.published[a_pos]
                if not wanted_assignment(assignment):
                    continue
                block = base + a_pos * width
                for s_pos, student in students:
                    if a_pos == first_a and s_pos < first_s:
                        continue
                    yield self._submission_json(course_id, block + s_pos, assignment, student)
        added_base = base + n_assign * width
        for e_pos, student in enumerate(roster.added):
            if not wanted_student(student) or not n_assign:
                continue
            for a_pos, assignment in enumerate(roster.published):
                sid = added_base + e_pos * n_assign + a_pos
                if sid < first or not wanted_assignment(assignment):
                    continue
                yield self._submission_json(course_id, sid, assignment, student)

    def removed_assignments(self, course_id: int) -> list[tuple[int, str]]:
        """(id, when) of the course's assignments deleted by :meth:`apply_changes`."""
        removed = self.changes.removed_assignments
        return [(a.id, removed[a.id]) for a in self._roster(course_id).published if a.id in removed]

    def removed_submissions(self, course_id: int) -> Iterator[tuple[int, str]]:
        """(id, when) of the submissions that left the course's list since the seed: those of a
        deleted assignment or of a student whose enrollment was deleted, at the earlier of the
        two. Same ids as :meth:`iter_submissions` (a change log, e.g. Canvas Data 2, needs them)."""
        roster = self._roster(course_id)
        if not roster.removed and not roster.gone:
            return
        removed = dict(self.removed_assignments(course_id))
        deleted = self.changes.deleted_enrollments
        gone: dict[int, str] = {}
        for e in roster.enrollments:
            if e["id"] in deleted:
                at = deleted[e["id"]]
                gone[e["user_id"]] = min(at, gone.get(e["user_id"], at))
        base = 100_000_000 + self._by_id[course_id].index * 10_000_000
        width, n_assign = len(roster.submitters), len(roster.published)

        def when(a: _Assignment, st: _Student) -> str | None:
            stamps = [t for t in (removed.get(a.id), gone.get(st.user_id)) if t is not None]
            return min(stamps) if stamps else None

        for a_pos, assignment in enumerate(roster.published):
            for s_pos, student in enumerate(roster.submitters):
                at = when(assignment, student)
                if at is not None:
                    yield base + a_pos * width + s_pos, at
        added_base = base + n_assign * width
        for e_pos, student in enumerate(roster.added):
            for a_pos, assignment in enumerate(roster.published):
                at = when(assignment, student)
                if at is not None:
                    yield added_base + e_pos * n_assign + a_pos, at

    def iter_submissions_after(
        self,
        course_id: int,
        stamp: str,
        *,
        start_id: int | None = None,
        assignment_ids: frozenset[int] | None = None,
        student_ids: frozenset[int] | None = None,
    ) -> Iterator[dict] | None:
        """The index Canvas's database answers ``submitted_since``/``graded_since`` from.

        Every seeded timestamp is before :data:`ANCHOR`, so after it only submissions that
        :meth:`apply_changes` touched can be newer: for a ``stamp`` at or after ANCHOR this yields
        just those candidates (in id order, filters applied; the caller still checks the
        timestamps) instead of generating the whole course. ``None`` when ``stamp`` is older and
        the course must be scanned.
        """
        if stamp < iso(ANCHOR):
            return None
        low, high = self.submission_id_bounds(course_id)
        first = low if start_id is None else max(low, start_id)
        touched = sorted(sid for sid in self.changes.submissions if first <= sid < high)

        def generate() -> Iterator[dict]:
            for sid in touched:
                found = next(
                    self.iter_submissions(
                        course_id,
                        start_id=sid,
                        assignment_ids=assignment_ids,
                        student_ids=student_ids,
                    ),
                    None,
                )
                if found is not None and found["id"] == sid:
                    yield found

        return generate()

    def submission(self, course_id: int, submission_id: int) -> dict | None:
        """One submission by id (None if the id is not one of the course's)."""
        found = next(iter(self.iter_submissions(course_id, start_id=submission_id)), None)
        return found if found is not None and found["id"] == submission_id else None

    def _submission_json(self, course_id: int, sid: int, a: _Assignment, st: _Student) -> dict:
        obj = self._seeded_submission_json(course_id, sid, a, st)
        change = self.changes.submissions.get(sid)
        if change is not None:
            obj.update(change)
        return obj

    def _seeded_submission_json(
        self, course_id: int, sid: int, a: _Assignment, st: _Student
    ) -> dict:
        d = _Draw(self.seed, "submission", course_id, a.id, st.user_id)
        pp = a.points_possible
        obj = {
            "id": sid,
            "user_id": st.user_id,
            "assignment_id": a.id,
            "url": None,
            "score": None,
            "grade": None,
            "excused": False,
            "attempt": None,
            "submission_type": None,
            "submitted_at": None,
            "body": None,
            "graded_at": None,
            "grade_matches_current_submission": True,
            "grader_id": None,
            "workflow_state": "unsubmitted",
            "late_policy_status": None,
            "points_deducted": None,
            "grading_period_id": None,
            "cached_due_date": iso(a.due_at),
            "extra_attempts": None,
            "posted_at": None,
            "redo_request": False,
            "custom_grade_status_id": None,
            "sticker": None,
            "late": False,
            "missing": False,
            "seconds_late": 0,
            "entered_grade": None,
            "entered_score": None,
            "preview_url": (
                f"{HTML_HOST}/courses/{course_id}/assignments/{a.id}/submissions/"
                f"{st.user_id}?preview=1&version=0"
            ),
            "assignment_visible": True,
        }
        if a.grading_type == "not_graded" or st.state == "invited":
            return obj
        grader = _teacher_id(self._by_id[course_id].index)
        if a.roll_call:
            return self._roll_call(obj, a, d, grader)
        r = d[0]
        if r < 0.08 or (r < 0.12 and a.due_at is None):
            # Unsubmitted placeholder; past due means missing (canvas-api.md §2.7).
            obj["missing"] = a.due_at is not None
            return obj
        if r < 0.11:
            obj.update(excused=True, workflow_state="graded", grader_id=grader)
            obj["graded_at"] = iso(self._after(a.unlock_at + _DAY, d[1]))
            obj["posted_at"] = obj["graded_at"]
            return obj
        anchor_due = a.due_at if a.due_at is not None else a.unlock_at + 10 * _DAY
        late = d[2] < 0.15
        if late:
            submitted = anchor_due + 60 + int(d[3] * 4 * _DAY)
        else:
            submitted = anchor_due - int(d[3] * 3 * _DAY) - 60
        submitted = min(submitted, ANCHOR - 3600)
        attempt = 1 + (2 if d[4] < 0.05 else 1 if d[4] < 0.15 else 0)
        obj.update(
            attempt=attempt,
            submission_type="online_text_entry",
            body=f"<p>Answer {sid}</p>",
            submitted_at=iso(submitted),
            workflow_state="submitted",
        )
        if late and a.due_at is not None:
            obj.update(late=True, seconds_late=submitted - a.due_at, late_policy_status="late")
        if r < 0.2:  # submitted, not graded yet
            return obj
        graded = min(submitted + 3600 + int(d[5] * 5 * _DAY), ANCHOR - 60)
        score, grade = self._score_and_grade(a, pp, d[6])
        obj.update(
            score=score,
            grade=grade,
            entered_score=score,
            entered_grade=grade,
            graded_at=iso(graded),
            posted_at=iso(graded),
            grader_id=grader,
            workflow_state="graded",
        )
        if attempt > 1 and d[7] < 0.4:
            # Resubmitted after grading: the old grade stays, marked stale.
            resubmitted = min(graded + 3600 + int(d[7] * 2 * _DAY), ANCHOR - 30)
            obj.update(
                submitted_at=iso(resubmitted),
                workflow_state="submitted",
                grade_matches_current_submission=False,
            )
        return obj

    def _roll_call(self, obj: dict, a: _Assignment, d: _Draw, grader: int) -> dict:
        """canvas-api.md §2.11: Roll Call posts a percent grade like "85%" via LTI."""
        if d[0] < 0.05:
            return obj
        # Sessions so far, marked present / late / absent; late counts at the default 0.8 weight.
        sessions, late, absent = 24, int(d[2] * 4), int(d[1] * d[1] * 10)
        present = sessions - late - absent
        percent = round((present + 0.8 * late) / sessions * 100)
        graded = self._after(a.unlock_at + 2 * _DAY, d[3])
        grade = f"{percent}%"
        obj.update(
            score=float(percent),
            grade=grade,
            entered_score=float(percent),
            entered_grade=grade,
            attempt=1,
            submission_type="basic_lti_launch",
            url="https://rollcall.instructure.com/launch",
            submitted_at=iso(graded),
            graded_at=iso(graded),
            posted_at=iso(graded),
            grader_id=grader,
            workflow_state="graded",
        )
        return obj

    @staticmethod
    def _after(start: int, fraction: float) -> int:
        return start + int(fraction * max(0, ANCHOR - 60 - start))

    @staticmethod
    def _score_and_grade(a: _Assignment, pp: float | None, u: float) -> tuple[float, str]:
        fraction = 0.45 + 0.55 * u
        if a.grading_type == "pass_fail":
            passed = u >= 0.15
            return (float(pp or 0.0) if passed else 0.0), ("complete" if passed else "incomplete")
        if pp is None:
            score = round(5 + 10 * u, 1)
            return score, _fmt_number(score)
        score = round(pp * fraction, 2)
        percent = round(fraction * 100, 2)
        if a.grading_type == "percent":
            return score, f"{_fmt_number(percent)}%"
        if a.grading_type in ("letter_grade", "gpa_scale"):
            return score, letter_grade(percent)
        return score, _fmt_number(score)

    # ---- activity -----------------------------------------------------------------------------

    def page_views(self, user_id: int) -> list[dict]:
        """PageView objects of one user, newest first (canvas-api.md §2.9)."""
        course_id = self._course_of_user(user_id)
        if course_id is None:
            return []
        roster = self._roster(course_id)
        # Page views are history: a later deletion of the enrollment does not erase them.
        states = roster.view_states.get(user_id, [])
        if not any(s in ("active", "completed", "inactive") for s in states):
            return []
        spec = self._by_id[course_id]
        start, end = self._term_bounds(spec)
        count = int(_Draw(self.seed, "views", user_id)[0] * 25)
        views = []
        for k in range(count):
            d = _Draw(self.seed, "view", user_id, k)
            participated = d[1] < 0.25
            created = start + int(d[0] * (end - start))
            a_pos = int(d[2] * len(roster.published)) if roster.published else 0
            target = roster.published[a_pos].id if roster.published else 0
            views.append(
                {
                    "id": _uuid(self.seed, user_id, k),
                    "app_name": None,
                    "url": f"{HTML_HOST}/courses/{course_id}/assignments/{target}",
                    "context_type": "Course",
                    "asset_type": "Assignment",
                    "controller": "submissions" if participated else "assignments",
                    "action": "create" if participated else "show",
                    "contributed": False,
                    "interaction_seconds": round(d[3] * 300, 2),
                    "created_at": iso(created),
                    "updated_at": iso(created),
                    "user_request": True,
                    "render_time": round(0.05 + d[4], 3),
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                    "participated": participated,
                    "http_method": "post" if participated else "get",
                    "remote_ip": f"10.0.{int(d[5] * 255)}.{int(d[6] * 255)}",
                    "links": {
                        "user": user_id,
                        "context": course_id,
                        "asset": target,
                        "real_user": None,
                        "account": ROOT_ACCOUNT_ID,
                    },
                }
            )
        views.sort(key=lambda v: (v["created_at"], v["id"]), reverse=True)
        return views

    def _course_of_user(self, user_id: int) -> int | None:
        index, rest = divmod(user_id - _user_base(0), _USERS_PER_COURSE)
        if user_id < _user_base(0) or index >= len(self._specs):
            return None
        added = self.changes.added_students.get(self._specs[index].id, 0)
        if _ADDED_OFFSET <= rest < _ADDED_OFFSET + added:
            return self._specs[index].id
        if rest >= self.students_per_course and not _STAFF_OFFSET <= rest < _STAFF_OFFSET + 3:
            return None
        return self._specs[index].id

    def user_ids(self) -> list[int]:
        """Every user id in the institution."""
        return [u["id"] for cid in self.course_ids() for u in self._roster(cid).users]

    def has_user(self, user_id: int) -> bool:
        """Whether the id belongs to one of the institution's users."""
        return self._course_of_user(user_id) is not None

    def summary_student_ids(self, course_id: int) -> list[int]:
        """Students with analytics summaries (those with submissions), by sortable name."""
        roster = self._roster(course_id)
        submitter_ids = {s.user_id for s in roster.submitters if s.user_id not in roster.gone}
        submitter_ids |= {s.user_id for s in roster.added}
        return [u["id"] for u in roster.users if u["id"] in submitter_ids]

    def student_summaries(self, course_id: int) -> list[dict]:
        """Analytics student summaries, ordered by sortable name (the endpoint's default)."""
        return self.student_summaries_for(course_id, self.summary_student_ids(course_id))

    def student_summaries_for(self, course_id: int, user_ids: list[int]) -> list[dict]:
        """Summaries for some students only, so a page can be built without the whole course."""
        views, parts = self._activity_counts(course_id)
        max_views, max_parts = max(views.values(), default=0), max(parts.values(), default=0)
        view_q, part_q = _quartiles(views.values()), _quartiles(parts.values())
        return [
            {
                "id": uid,
                "page_views": views.get(uid, 0),
                "max_page_views": max_views,
                "page_views_level": _level(views.get(uid, 0), view_q),
                "participations": parts.get(uid, 0),
                "max_participations": max_parts,
                "participations_level": _level(parts.get(uid, 0), part_q),
                "tardiness_breakdown": self._tardiness(course_id, uid),
            }
            for uid in user_ids
        ]

    @lru_cache(maxsize=64)  # noqa: B019 - the institution lives as long as its server
    def _activity_counts(self, course_id: int) -> tuple[dict[int, int], dict[int, int]]:
        roster = self._roster(course_id)
        views, parts = {}, {}
        for student in [*roster.submitters, *roster.added]:
            pv = self.page_views(student.user_id)
            views[student.user_id] = len(pv)
            parts[student.user_id] = sum(1 for v in pv if v["participated"])
        return views, parts

    def _tardiness(self, course_id: int, user_id: int) -> dict:
        empty = {"missing": 0, "late": 0, "on_time": 0, "floating": 0, "total": 0}
        return dict(self._tardiness_counts(course_id).get(user_id, empty))

    @lru_cache(maxsize=64)  # noqa: B019 - the institution lives as long as its server
    def _tardiness_counts(self, course_id: int) -> dict[int, dict[str, int]]:
        """Every student's tardiness breakdown in one pass over the course's submissions (a
        summaries page would otherwise generate each student's submissions again)."""
        by_student: dict[int, dict[str, int]] = {}
        for sub in self.iter_submissions(course_id):
            counts = by_student.setdefault(
                sub["user_id"], {"missing": 0, "late": 0, "on_time": 0, "floating": 0, "total": 0}
            )
            counts["total"] += 1
            if sub["missing"]:
                counts["missing"] += 1
            elif sub["late"]:
                counts["late"] += 1
            elif sub["submitted_at"] is not None:
                counts["on_time"] += 1
            else:
                counts["floating"] += 1
        return by_student

    # ---- change after a sync (incremental sync tests) -----------------------------------------

    def apply_changes(
        self,
        *,
        fraction: float = 0.01,
        seed: int = 0,
        at: datetime | None = None,
        delete_enrollments: int = 0,
        add_students: int = 0,
        remove_assignments: int = 0,
        courses: list[int] | None = None,
    ) -> dict[str, int]:
        """Change the institution as teachers and registrars would between two syncs.

        * ``fraction`` of the submissions (chosen by ``seed``) are regraded (new score, grade and
          ``graded_at = at``) or, for about a third, resubmitted (``submitted_at = at``,
          ``attempt + 1``, state ``submitted``);
        * ``delete_enrollments`` active student enrollments become ``deleted`` (``updated_at =
          at``): their submissions leave the submissions list, as in Canvas;
        * ``add_students`` new active students join (user, enrollment and a submission per
          published assignment, with the seeded mix of placeholder and graded work); their
          seeded timestamps stay, ``changes.students_added_at`` records when each joined;
        * ``remove_assignments`` published assignments (never Roll Call) are deleted.

        Everything stays generated on demand: the changes are an overlay (``self.changes``) on the
        pure function of the seed, so ground truth (``enrollments()``, ``iter_submissions()`` ...)
        is exact afterwards. ``at`` defaults to now, in whole seconds (Canvas timestamps); the
        ``courses`` default is every available course. Returns counts of what changed.
        """
        moment = int((at or datetime.now(UTC)).timestamp())
        stamp = iso(moment)
        live = courses or [s.id for s in self._specs if s.workflow_state == "available"]
        done = {"regraded": 0, "resubmitted": 0, "deleted_enrollments": 0, "added_students": 0,
                "removed_assignments": 0}  # fmt: skip
        with self._changes_lock:
            changes = self.changes.copy()
            for cid in live:
                for sub in self.iter_submissions(cid):
                    d = _Draw(self.seed, "change", seed, sub["id"])
                    if d[0] >= fraction:
                        continue
                    spec = next(
                        a for a in self._roster(cid).published if a.id == sub["assignment_id"]
                    )
                    if sub["score"] is not None and (d[1] < 0.67 or spec.roll_call):
                        changes.submissions[sub["id"]] = self._regrade(spec, sub, d, stamp)
                        done["regraded"] += 1
                    else:
                        changes.submissions[sub["id"]] = {
                            "submitted_at": stamp,
                            "attempt": (sub["attempt"] or 0) + 1,
                            "workflow_state": "submitted",
                            "submission_type": "online_text_entry",
                            "missing": False,
                            "grade_matches_current_submission": sub["score"] is None,
                        }
                        done["resubmitted"] += 1
            for k in range(delete_enrollments):
                cid = live[(seed + k) % len(live)]
                roster = self._roster(cid)
                candidates = [
                    e for e in roster.enrollments
                    if e["type"] == "StudentEnrollment" and e["enrollment_state"] == "active"
                    and e["id"] not in changes.deleted_enrollments
                ]  # fmt: skip
                if candidates:
                    pick = candidates[
                        int(_Draw(self.seed, "unenroll", seed, k)[0] * len(candidates))
                    ]
                    changes.deleted_enrollments[pick["id"]] = stamp
                    done["deleted_enrollments"] += 1
            for k in range(add_students):
                cid = live[(seed + k + 1) % len(live)]
                position = changes.added_students.get(cid, 0)
                user_id = _user_base(self._by_id[cid].index) + _ADDED_OFFSET + position
                changes.students_added_at[user_id] = stamp
                changes.added_students[cid] = position + 1
                done["added_students"] += 1
            for k in range(remove_assignments):
                cid = live[(seed + k + 2) % len(live)]
                candidates = [
                    a.id for a in self._roster(cid).published
                    if not a.roll_call and a.id not in changes.removed_assignments
                ]  # fmt: skip
                if candidates:
                    changes.removed_assignments[candidates[-1]] = stamp
                    done["removed_assignments"] += 1
            self.changes = changes
            self._roster.cache_clear()
            self._activity_counts.cache_clear()
            self._tardiness_counts.cache_clear()
        return done

    def _regrade(self, a: _Assignment, sub: dict, d: _Draw, stamp: str) -> dict:
        if a.roll_call:
            percent = float(round(40 + 60 * d[2]))
            score, grade = percent, f"{percent:.0f}%"
        else:
            score, grade = self._score_and_grade(a, a.points_possible, d[2])
            if score == sub["score"]:
                score = round(score * 0.5, 2) if a.points_possible else score + 1.0
                grade = _fmt_number(score) if a.grading_type == "points" else grade
        return {
            "score": score,
            "grade": grade,
            "entered_score": score,
            "entered_grade": grade,
            "graded_at": stamp,
            "posted_at": stamp,
            "workflow_state": "graded",
            "excused": False,
        }

    # ---- PII and counts -----------------------------------------------------------------------

    def pii_values(self) -> set[str]:
        """Every name, short/sortable name, email, login id and SIS id string in the institution.

        Tests scan serving tables, logs and spans for these; none may appear there.
        """
        values: set[str] = set()
        for cid in self.course_ids():
            for user in self._roster(cid).users:
                for key in ("name", "short_name", "sortable_name", "email", "login_id"):
                    values.add(user[key])
                if user["sis_user_id"]:
                    values.add(user["sis_user_id"])
        return values

    def counts(self) -> dict[str, int]:
        """Totals per domain across every course (deleted courses included)."""
        ids = self.course_ids()
        return {
            "courses": len(ids),
            "sections": sum(len(self.sections(c)) for c in ids),
            "users": sum(len(self._roster(c).users) for c in ids),
            "enrollments": sum(len(self.enrollments(c)) for c in ids),
            "assignments": sum(len(self.assignments(c)) for c in ids),
            "submissions": sum(self.submission_count(c) for c in ids),
        }


# User ids: a block per course; students from the start of it, staff from _STAFF_OFFSET.
_USERS_PER_COURSE = 100_000
_STAFF_OFFSET = 90_000
_ADDED_OFFSET = 80_000  # students added by apply_changes


def _user_base(course_index: int) -> int:
    return 1_000_000 + course_index * _USERS_PER_COURSE


def _teacher_id(course_index: int) -> int:
    return _user_base(course_index) + _STAFF_OFFSET


_ROLE_IDS = {
    "StudentEnrollment": 3,
    "TeacherEnrollment": 4,
    "TaEnrollment": 5,
    "DesignerEnrollment": 6,
    "ObserverEnrollment": 7,
}


def _name_key(user: dict) -> tuple[str, int]:
    return user["sortable_name"], user["id"]


def _ascii_slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_name.lower() if ch.isalnum())


def _uuid(*key: object) -> str:
    h = hashlib.md5(repr(key).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _quartiles(values) -> tuple[float, float]:
    ordered = sorted(v for v in values if v)
    if not ordered:
        return 0.0, 0.0
    return ordered[len(ordered) // 4], ordered[(3 * len(ordered)) // 4]


def _level(value: int, quartiles: tuple[float, float]) -> int:
    """analytics student_summary.rb: 0 if none, 1 below Q1, 2 below Q3, else 3."""
    if not value:
        return 0
    if value < quartiles[0]:
        return 1
    if value < quartiles[1]:
        return 2
    return 3


def build_institution(
    *,
    seed: int,
    courses: int,
    students_per_course: int,
    assignments_per_course: int | None = None,
) -> Institution:
    """Build the institution for a seed; the same arguments always give the same data.

    ``assignments_per_course`` counts published assignments (default 10); every course also has
    one unpublished assignment. Roll Call, one assignment per grading type and one with null
    ``points_possible`` need ``assignments_per_course >= 8``; a student in each of the seven
    enrollment states needs ``students_per_course >= 8``. Course states cycle available,
    unpublished, completed, deleted (course indexes 1, 2, 3 mod 10), so a deleted course exists
    once ``courses >= 4``.
    """
    return Institution(
        seed=seed,
        courses=courses,
        students_per_course=students_per_course,
        assignments_per_course=10 if assignments_per_course is None else assignments_per_course,
    )
