"""A seeded synthetic Moodle site that knows its own ground truth.

Every object is a pure function of ``(seed, course, ...)``: the same seed always yields the same
site, byte for byte. The dicts returned here are exactly what the web-service functions serve
(moodle-api.md §3 shapes, field names and JSON types), so tests and benchmarks compare what a
connector loaded with what the "LMS" holds.

Layout (ids chosen so nothing collides and everything is derivable):

- course ids: the site course is 1 (moodle-api.md §3.2, ``format: "site"``); real courses are
  ``2, 3, ...``; category of course ``i`` is ``1 + i % 3``.
- users: the admin is 2 and is enrolled as ``editingteacher`` in every course (moodle-api.md §2);
  each course has one editing teacher ``10_000 + 10 i``, even courses also a non-editing teacher
  ``10_001 + 10 i``; students ``100_000 + 10_000 i + k``. Students belong to one course.
- assignments ``1_000 (i + 1) + p`` (cmid ``+ 500_000``); per course: points, scale (grade -1,
  scale 1 "Separate and Connected ways of knowing"), pass grade 50, no submission plugins,
  no due date, then more points assignments (moodle-api.md §2 lists these kinds).
- one page (manual completion) and one attendance instance per course
  (blackboard-moodle-attendance.md §2a: statuses P/A/L/E with grades 2/0/1/1 per instance).

Choices where the references are silent, documented once here:

- ``core_enrol_get_enrolled_users`` lists every enrolment, suspended ones too; ``onlyactive=1``
  drops the suspended ones (MENR option). Order is by user id.
- Students with a submission have one row in ``mod_assign_get_submissions``; a grade without a
  submission (the no-submission assignment) has a ``"new"`` row (moodle-api.md §3.8).
- The grade report lists students only, items in assignment order, the course total last
  (moodle-api.md §3.5); the course total is the mean percentage of graded items.
- ``core_course_get_contents`` (shape not recorded in moodle-api.md) serves one section with the
  course's modules, in the field names Moodle's ``core_course_external`` declares.
"""

from __future__ import annotations

import calendar
import hashlib
import struct
from dataclasses import dataclass
from functools import lru_cache

SITE_COURSE_ID = 1
ADMIN_ID = 2
WWWROOT = "https://moodle.example.edu"
RELEASE = "4.5.6 (Build: 20250811)"  # moodle-api.md header
VERSION = "2024100706"

# The fixed "now" of the synthetic site: every activity timestamp is before it.
ANCHOR = calendar.timegm((2026, 11, 20, 0, 0, 0))
_DAY = 86_400
_TERM_START = calendar.timegm((2026, 8, 24, 7, 0, 0))
_TERM_END = calendar.timegm((2026, 12, 18, 8, 0, 0))

# Moodle's default scale 1 (moodle-api.md §3.5: 3 items, label "Separate and connected").
SCALE_ID = 1
SCALE_NAME = "Separate and Connected ways of knowing"
SCALE_ITEMS = ("Mostly separate knowing", "Separate and connected", "Mostly connected knowing")
PASS_GRADE = 50.0

# (roleid, shortname) as Moodle installs them.
ROLES = {"manager": 1, "editingteacher": 3, "teacher": 4, "student": 5}

# blackboard-moodle-attendance.md §2a: default statuses P=2, A=0, L=1, E=1.
ATTENDANCE_STATUSES = (
    ("P", "Present", 2.0),
    ("A", "Absent", 0.0),
    ("L", "Late", 1.0),
    ("E", "Excused", 1.0),
)
SESSIONS_PER_COURSE = 6  # the last one is in the future, not taken yet

_FIRST = (
    "Ava", "Liam", "Noah", "Maya", "Ethan", "Sofia", "Lucas", "Amara", "Kenji", "Priya",
    "Mateo", "Fatima", "Oliver", "Chloe", "Diego", "Hana", "Yusuf", "Ingrid", "Tariq", "Mei",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "García", "Nguyen", "Kowalski", "Patel", "Okafor", "Müller", "Rossi",
    "O'Brien", "Haddad", "Tanaka", "Silva", "Andersson", "Dubois", "Ivanova", "Mendoza",
)  # fmt: skip
_SPECIAL = (("Zoë", "Ñúñez"), ("小龙", "李"), ("Øystein", "Ødegård"))
_SUBJECTS = (
    ("BIO", "Cell Biology"), ("CHEM", "General Chemistry"), ("MATH", "Calculus I"),
    ("HIST", "World History"), ("ENG", "Composition"), ("PHYS", "Mechanics"),
)  # fmt: skip


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


def _number(text: str) -> float | None:
    """A grade string as a number; a value that is not one (a planted bad record) → None."""
    try:
        return float(text)
    except ValueError:
        return None


def grade_text(value: float) -> str:
    """moodle-api.md §3.7: grades are strings with 5 decimals, e.g. "67.00000"."""
    return f"{value:.5f}"


@dataclass(frozen=True)
class AssignSpec:
    id: int
    cmid: int
    position: int
    kind: str  # points | scale | pass | offline | nodue
    grade: int  # moodle-api.md §3.6: negative = scale id
    duedate: int
    completion: str | None  # completionsubmit | completionusegrade | completionpassgrade

    @property
    def grademax(self) -> float:
        return float(len(SCALE_ITEMS)) if self.grade < 0 else float(self.grade)


@dataclass(frozen=True)
class StudentWork:
    """One student's state on one assignment (None fields = absent)."""

    submission: dict | None
    grade: dict | None


@dataclass
class _Course:
    course: dict
    users: list[dict]  # enrolled users, id order, full §3.3 shape
    suspended: frozenset[int]
    students: list[int]
    assignments: list[AssignSpec]


class Institution:
    """One synthetic Moodle site: the data and, equally, the ground truth."""

    def __init__(
        self,
        *,
        seed: int,
        courses: int,
        students_per_course: int,
        assignments_per_course: int = 6,
        shared_sis_ids: tuple[str, ...] = (),
    ) -> None:
        if courses < 1 or students_per_course < 1 or assignments_per_course < 1:
            raise ValueError("courses, students_per_course and assignments_per_course must be >= 1")
        if students_per_course > 9_000 or assignments_per_course > 900 or courses > 5_000:
            raise ValueError("at most 5,000 courses, 9,000 students, 900 assignments per course")
        self.seed = seed
        self.students_per_course = students_per_course
        self.assignments_per_course = assignments_per_course
        # SIS ids given to the first students of the first course, so a test can plant people
        # who also exist in another LMS of the same institution.
        self.shared_sis_ids = tuple(shared_sis_ids)
        self._ids = [2 + i for i in range(courses)]
        self._course = lru_cache(maxsize=256)(self._build_course)

    # ---- site and courses -------------------------------------------------------------------

    def course_ids(self) -> list[int]:
        """Real course ids (the site course 1 excluded), in id order."""
        return list(self._ids)

    def has_course(self, course_id: int) -> bool:
        return course_id in self._ids

    def _index(self, course_id: int) -> int:
        return course_id - 2

    def site_info(self) -> dict:
        """moodle-api.md §3.1 (the token's user is the admin)."""
        return {
            "sitename": "Example University Moodle",
            "username": "admin",
            "firstname": "Admin",
            "lastname": "User",
            "fullname": "Admin User",
            "lang": "en",
            "userid": ADMIN_ID,
            "siteurl": WWWROOT,
            "userpictureurl": f"{WWWROOT}/theme/image.php/boost/core/1/u/f1",
            "functions": [],  # filled by the app from the service's functions
            "downloadfiles": 1,
            "uploadfiles": 0,
            "release": RELEASE,
            "version": VERSION,
            "mobilecssurl": "",
            "advancedfeatures": [
                {"name": "usecomments", "value": 1},
                {"name": "usetags", "value": 1},
                {"name": "enablenotes", "value": 1},
                {"name": "enablecompletion", "value": 1},
            ],
            "usercanmanageownfiles": True,
            "userquota": 104857600,
            "usermaxuploadfilesize": -1,
            "userhomepage": 1,
            "userprivateaccesskey": hashlib.md5(f"key:{self.seed}".encode()).hexdigest(),
            "siteid": SITE_COURSE_ID,
            "sitecalendartype": "gregorian",
            "usercalendartype": "gregorian",
            "userissiteadmin": True,
            "theme": "boost",
            "limitconcurrentlogins": 0,
            "policyagreed": 0,
        }

    def site_course(self) -> dict:
        """The front page course (moodle-api.md §3.2, §6): id 1, format "site", category 0,
        no ``hiddensections``."""
        obj = self._course_obj(
            course_id=SITE_COURSE_ID,
            shortname="EXU",
            fullname="Example University Moodle",
            idnumber="",
            categoryid=0,
            visible=1,
            startdate=0,
            enddate=0,
            fmt="site",
        )
        del obj["hiddensections"]
        return obj

    def courses(self) -> list[dict]:
        """``core_course_get_courses`` without ids: every course, the site course first."""
        return [self.site_course(), *(self.course(c) for c in self._ids)]

    def course(self, course_id: int) -> dict:
        if course_id == SITE_COURSE_ID:
            return self.site_course()
        return self._course(course_id).course

    def _course_obj(
        self,
        *,
        course_id: int,
        shortname: str,
        fullname: str,
        idnumber: str,
        categoryid: int,
        visible: int,
        startdate: int,
        enddate: int,
        fmt: str,
    ) -> dict:
        # moodle-api.md §3.2, in its field order and types.
        return {
            "id": course_id,
            "shortname": shortname,
            "categoryid": categoryid,
            "categorysortorder": 10000 * categoryid + course_id,
            "fullname": fullname,
            "displayname": fullname,
            "idnumber": idnumber,
            "summary": f"<p>{fullname}</p>",
            "summaryformat": 1,
            "format": fmt,
            "showgrades": 1,
            "newsitems": 5 if fmt != "site" else 3,
            "startdate": startdate,
            "enddate": enddate,
            "numsections": 10 if fmt != "site" else 1,
            "maxbytes": 0,
            "showreports": 0,
            "visible": visible,
            "hiddensections": 0,
            "groupmode": 0,
            "groupmodeforce": 0,
            "defaultgroupingid": 0,
            "timecreated": _TERM_START - 30 * _DAY,
            "timemodified": _TERM_START - 20 * _DAY,
            "enablecompletion": 1 if fmt != "site" else 0,
            "completionnotify": 0,
            "lang": "",
            "forcetheme": "",
            "courseformatoptions": (
                [{"name": "hiddensections", "value": 0}, {"name": "coursedisplay", "value": 0}]
                if fmt != "site"
                else []
            ),
            "showactivitydates": fmt != "site",
            "showcompletionconditions": fmt != "site",
        }

    def _build_course(self, course_id: int) -> _Course:
        i = self._index(course_id)
        subject, title = _SUBJECTS[i % len(_SUBJECTS)]
        number = 100 + i
        # Every fifth course is hidden from students (visible 0).
        visible = 0 if i % 5 == 1 else 1
        course = self._course_obj(
            course_id=course_id,
            shortname=f"{subject}{number}",
            fullname=f"{subject} {number}: {title}",
            idnumber=f"2026-fall-{subject}-{number}",
            categoryid=1 + i % 3,
            visible=visible,
            startdate=_TERM_START,
            enddate=_TERM_END,
            fmt="topics",
        )
        students = [100_000 + 10_000 * i + k for k in range(self.students_per_course)]
        staff = [(ADMIN_ID, "editingteacher"), (10_000 + 10 * i, "editingteacher")]
        if i % 2 == 0:
            staff.append((10_001 + 10 * i, "teacher"))
        suspended = set()
        users = []
        for uid, role in sorted([*staff, *((s, "student") for s in students)]):
            users.append(self._enrolled_user(course, uid, role))
            if role == "student" and _Draw(self.seed, "susp", course_id, uid)[0] < 0.1:
                suspended.add(uid)
        return _Course(
            course=course,
            users=users,
            suspended=frozenset(suspended),
            students=students,
            assignments=self._assign_specs(i),
        )

    # ---- people -------------------------------------------------------------------------------

    def _names(self, uid: int) -> tuple[str, str]:
        if uid == ADMIN_ID:
            return "Admin", "User"
        if uid >= 100_000 and (uid % 10_000) < len(_SPECIAL):
            return _SPECIAL[uid % 10_000]
        d = _Draw(self.seed, "name", uid)
        return d.pick(0, _FIRST), d.pick(1, _LAST)

    def _sis(self, uid: int) -> str:
        """The SIS id (``idnumber``) or "" (15 % of students and the admin have none)."""
        if uid == ADMIN_ID:
            return ""
        if uid >= 100_000:
            ordinal = uid - 100_000
            if ordinal < len(self.shared_sis_ids):
                return self.shared_sis_ids[ordinal]
            if _Draw(self.seed, "sis", uid)[0] < 0.15:
                return ""
        return "M" + hashlib.sha1(f"sis:{self.seed}:{uid}".encode()).hexdigest()[:9].upper()

    def _username(self, uid: int) -> str:
        return "admin" if uid == ADMIN_ID else f"u{uid}"

    def _email(self, uid: int) -> str:
        first, last = self._names(uid)
        domain = "students.example.edu" if uid >= 100_000 else "example.edu"
        return f"{self._username(uid)}.{len(first + last)}@{domain}"

    def _lastcourseaccess(self, course_id: int, uid: int) -> int:
        d = _Draw(self.seed, "lca", course_id, uid)
        if uid >= 100_000 and d[0] < 0.1:
            return 0  # never accessed the course (blackboard-moodle-attendance.md §2b)
        return _TERM_START + int(d[1] * (ANCHOR - _TERM_START - 3600))

    def _enrolled_user(self, course: dict, uid: int, role: str) -> dict:
        """moodle-api.md §3.3; ``idnumber``/``institution`` only when non-empty (§6)."""
        first, last = self._names(uid)
        d = _Draw(self.seed, "user", uid)
        first_access = _TERM_START - int(d[0] * 30 * _DAY)
        user: dict = {
            "id": uid,
            "username": self._username(uid),
            "firstname": first,
            "lastname": last,
            "fullname": f"{first} {last}",
            "email": self._email(uid),
            "department": "" if uid >= 100_000 else "Faculty",
            "firstaccess": first_access,
            "lastaccess": ANCHOR - 3600 - int(d[1] * 5 * _DAY),
            "lastcourseaccess": self._lastcourseaccess(course["id"], uid),
            "profileimageurlsmall": f"{WWWROOT}/theme/image.php/boost/core/1/u/f2",
            "profileimageurl": f"{WWWROOT}/theme/image.php/boost/core/1/u/f1",
            "roles": [
                {"roleid": ROLES[role], "name": "", "shortname": role, "sortorder": 0},
            ],
            "enrolledcourses": [{k: course[k] for k in ("id", "fullname", "shortname")}],
        }
        if uid != ADMIN_ID and d[2] < 0.3:
            user["preferences"] = [{"name": "auth_forcepasswordchange", "value": 0}]
        sis = self._sis(uid)
        if sis:
            user["idnumber"] = sis
        if d[3] < 0.5:
            user["institution"] = "Example University"
        return user

    def enrolled_users(self, course_id: int, *, onlyactive: bool = False) -> list[dict]:
        """``core_enrol_get_enrolled_users`` (moodle-api.md §3.3), user id order."""
        c = self._course(course_id)
        if onlyactive:
            return [u for u in c.users if u["id"] not in c.suspended]
        return c.users

    def suspended_ids(self, course_id: int) -> frozenset[int]:
        return self._course(course_id).suspended

    def student_ids(self, course_id: int) -> list[int]:
        return self._course(course_id).students

    def user_ids(self) -> list[int]:
        ids = {u["id"] for c in self._ids for u in self._course(c).users}
        return sorted(ids)

    def has_user(self, uid: int) -> bool:
        if uid == ADMIN_ID:
            return True
        if uid >= 100_000:
            i, k = divmod(uid - 100_000, 10_000)
            return i < len(self._ids) and k < self.students_per_course
        if 10_000 <= uid < 100_000:
            i, k = divmod(uid - 10_000, 10)
            return i < len(self._ids) and (k == 0 or (k == 1 and i % 2 == 0))
        return False

    def user_record(self, uid: int) -> dict:
        """``core_user_get_users_by_field`` shape (moodle-api.md §3.4): ``suspended`` and
        ``confirmed`` are JSON bools."""
        first, last = self._names(uid)
        d = _Draw(self.seed, "user", uid)
        obj: dict = {
            "id": uid,
            "username": self._username(uid),
            "firstname": first,
            "lastname": last,
            "fullname": f"{first} {last}",
            "email": self._email(uid),
            "department": "" if uid >= 100_000 else "Faculty",
            "idnumber": self._sis(uid),
            "firstaccess": _TERM_START - int(d[0] * 30 * _DAY),
            "lastaccess": ANCHOR - 3600 - int(d[1] * 5 * _DAY),
            "auth": "manual",
            "suspended": False,
            "confirmed": True,
            "lang": "en",
            "theme": "",
            "timezone": "99",
            "mailformat": 1,
            "trackforums": 0,
            "profileimageurlsmall": f"{WWWROOT}/theme/image.php/boost/core/1/u/f2",
            "profileimageurl": f"{WWWROOT}/theme/image.php/boost/core/1/u/f1",
        }
        if d[3] < 0.5:
            obj["institution"] = "Example University"
        return obj

    def users_by_field(self, field: str, values: list[str]) -> list[dict]:
        """Values that match nobody are dropped silently (moodle-api.md §3.4, §6)."""
        wanted = set(values)
        out = []
        for uid in self.user_ids():
            record = self.user_record(uid)
            if str(record[field]) in wanted and record[field] != "":
                out.append(record)
        return out

    # ---- assignments, grades, submissions --------------------------------------------------

    def _assign_specs(self, i: int) -> list[AssignSpec]:
        kinds = ("points", "scale", "pass", "offline", "nodue")
        specs = []
        for p in range(self.assignments_per_course):
            kind = kinds[p] if p < len(kinds) else "points"
            aid = 1_000 * (i + 1) + p
            due = 0 if kind == "nodue" else _TERM_START + (7 + 9 * p) * _DAY
            completion = {
                "points": "completionsubmit" if p == 0 else None,
                "scale": "completionusegrade",
                "pass": "completionpassgrade",
            }.get(kind)
            grade = -SCALE_ID if kind == "scale" else 10 if kind == "offline" else 100
            specs.append(AssignSpec(aid, aid + 500_000, p, kind, grade, due, completion))
        return specs

    def assign_specs(self, course_id: int) -> list[AssignSpec]:
        return self._course(course_id).assignments

    def assignments(self, course_id: int) -> list[dict]:
        """``mod_assign_get_assignments`` entries (moodle-api.md §3.6)."""
        return [self._assignment_json(course_id, a) for a in self.assign_specs(course_id)]

    def _assignment_json(self, course_id: int, a: AssignSpec) -> dict:
        offline = a.kind == "offline"
        configs = []
        if not offline:
            plugin = "file" if a.kind == "nodue" else "onlinetext"
            configs.append(
                {"plugin": plugin, "subtype": "assignsubmission", "name": "enabled", "value": "1"}
            )
        configs.append(
            {"plugin": "comments", "subtype": "assignfeedback", "name": "enabled", "value": "1"}
        )
        names = {
            "points": "Essay",
            "scale": "Reflection (scale)",
            "pass": "Lab report (pass 50)",
            "offline": "Presentation (offline)",
            "nodue": "Portfolio",
        }
        return {
            "id": a.id,
            "cmid": a.cmid,
            "course": course_id,
            "name": f"{names[a.kind]} {a.position + 1}",
            "nosubmissions": 1 if offline else 0,
            "submissiondrafts": 1 if a.kind == "points" else 0,
            "sendnotifications": 0,
            "sendlatenotifications": 0,
            "sendstudentnotifications": 1,
            "duedate": a.duedate,
            "allowsubmissionsfromdate": _TERM_START,
            "grade": a.grade,
            "timemodified": _TERM_START - _DAY,
            "completionsubmit": 1 if a.completion == "completionsubmit" else 0,
            "cutoffdate": 0,
            "gradingduedate": a.duedate + 7 * _DAY if a.duedate else 0,
            "teamsubmission": 0,
            "requireallteammemberssubmit": 0,
            "teamsubmissiongroupingid": 0,
            "blindmarking": 0,
            "hidegrader": 0,
            "revealidentities": 0,
            "attemptreopenmethod": "untilpass" if a.kind == "pass" else "none",
            "maxattempts": -1,
            "markingworkflow": 0,
            "markingallocation": 0,
            "markinganonymous": 0,
            "requiresubmissionstatement": 0,
            "preventsubmissionnotingroup": 0,
            "configs": configs,
            "intro": f"<p>Instructions for assignment {a.position + 1}</p>",
            "introformat": 1,
            "introfiles": [],
            "introattachments": [],
            "timelimit": 0,
            "submissionattachments": 0,
        }

    def work(self, course_id: int, a: AssignSpec, uid: int) -> StudentWork:
        """One student's submission row and grade row on one assignment (either may be None)."""
        d = _Draw(self.seed, "work", a.id, uid)
        base = a.duedate or (_TERM_START + 20 * _DAY)
        sid = a.id * 100_000 + 2 * (uid % 10_000)  # unique per (assignment, student); grade = +1
        submitted_at = min(base - 3600 - int(d[1] * 3 * _DAY), ANCHOR - 7200)
        if d[2] < 0.15:
            submitted_at = min(base + 3600 + int(d[1] * 2 * _DAY), ANCHOR - 7200)  # late
        graded_at = min(submitted_at + 3600 + int(d[3] * 4 * _DAY), ANCHOR - 60)
        if a.kind == "offline":
            if d[0] < 0.2:
                return StudentWork(None, None)
            graded_at = min(base + int(d[3] * 4 * _DAY), ANCHOR - 60)
            grade = self._grade_row(a, uid, sid, graded_at, d[4])
            sub = self._submission_row(sid, uid, "new", graded_at, graded_at, graded=True)
            return StudentWork(sub, grade)
        if d[0] < 0.1:
            return StudentWork(None, None)
        if d[0] < 0.2:
            return StudentWork(
                self._submission_row(sid, uid, "draft", submitted_at, submitted_at, graded=False),
                None,
            )
        graded = d[5] >= 0.25
        sub = self._submission_row(
            sid, uid, "submitted", submitted_at - 600, submitted_at, graded=graded
        )
        return StudentWork(sub, self._grade_row(a, uid, sid, graded_at, d[4]) if graded else None)

    @staticmethod
    def _submission_row(
        sid: int, uid: int, status: str, created: int, modified: int, *, graded: bool
    ) -> dict:
        """moodle-api.md §3.8 (plugins kept small: online text or an empty file area)."""
        plugins = []
        if status != "new":
            plugins = [
                {
                    "type": "onlinetext",
                    "name": "Online text",
                    "fileareas": [{"area": "submissions_onlinetext", "files": []}],
                    "editorfields": [
                        {
                            "name": "onlinetext",
                            "description": "Online text",
                            "text": f"<p>Answer {sid}</p>",
                            "format": 1,
                        }
                    ],
                },
                {"type": "comments", "name": "Submission comments"},
            ]
        return {
            "id": sid,
            "userid": uid,
            "attemptnumber": 0,
            "timecreated": created,
            "timemodified": modified,
            "timestarted": None,
            "status": status,
            "groupid": 0,
            "plugins": plugins,
            "gradingstatus": "graded" if graded else "notgraded",
        }

    def _grade_row(self, a: AssignSpec, uid: int, sid: int, at: int, u: float) -> dict:
        """moodle-api.md §3.7: ``grade`` is a 5-decimal string; a scale grade is its index."""
        if a.grade < 0:
            value = float(1 + int(u * len(SCALE_ITEMS)))
        else:
            value = round(a.grade * (0.3 + 0.7 * u), 2)
        return {
            "id": sid + 1,
            "userid": uid,
            "attemptnumber": 0,
            "timecreated": at - 60,
            "timemodified": at,
            "grader": 10_000 + 10 * (a.id // 1_000 - 1),
            "grade": grade_text(value),
        }

    def grades(self, course_id: int, assignment_id: int, *, since: int = 0) -> list[dict]:
        """``mod_assign_get_grades`` for one assignment: rows modified at or after ``since``."""
        a = next(s for s in self.assign_specs(course_id) if s.id == assignment_id)
        out = []
        for uid in self.student_ids(course_id):
            g = self.work(course_id, a, uid).grade
            if g is not None and g["timemodified"] >= since:
                out.append(g)
        return out

    def submissions(
        self,
        course_id: int,
        assignment_id: int,
        *,
        status: str = "",
        since: int = 0,
        before: int = 0,
    ) -> list[dict]:
        """``mod_assign_get_submissions`` for one assignment (status/since/before filters)."""
        a = next(s for s in self.assign_specs(course_id) if s.id == assignment_id)
        out = []
        for uid in self.student_ids(course_id):
            s = self.work(course_id, a, uid).submission
            if s is None or (status and s["status"] != status):
                continue
            if s["timemodified"] < since or (before and s["timemodified"] > before):
                continue
            out.append(s)
        return out

    def assignment_course(self, assignment_id: int) -> int | None:
        i, p = divmod(assignment_id, 1_000)
        if 1 <= i <= len(self._ids) and p < self.assignments_per_course:
            return self._ids[i - 1]
        return None

    # ---- grade report -----------------------------------------------------------------------

    def grade_report(self, course_id: int, *, userid: int | None = None) -> list[dict]:
        """``gradereport_user_get_grade_items`` ``usergrades`` (moodle-api.md §3.5)."""
        course = self.course(course_id)
        students = self.student_ids(course_id)
        if userid is not None:
            students = [s for s in students if s == userid]
        return [self._user_grades(course, uid) for uid in students]

    def _user_grades(self, course: dict, uid: int) -> dict:
        first, last = self._names(uid)
        cid = course["id"]
        specs = self.assign_specs(cid)
        weight = round(1 / len(specs), 5)
        items, percents = [], []
        for a in specs:
            work = self.work(cid, a, uid)
            raw = _number(work.grade["grade"]) if work.grade else None
            item = self._grade_item(cid, a, raw, work, weight)
            items.append(item)
            if raw is not None:
                low = 1.0 if a.grade < 0 else 0.0
                percents.append((raw - low) / (a.grademax - low) * 100)
        total = round(sum(percents) / len(percents), 5) if percents else None
        items.append(
            {
                "id": 3_000_000 + cid,
                "itemname": None,
                "itemtype": "course",
                "itemmodule": None,
                "iteminstance": course["categoryid"],
                "itemnumber": None,
                "idnumber": None,
                "categoryid": None,
                "outcomeid": None,
                "scaleid": None,
                "locked": False,
                "graderaw": total,
                "gradedatesubmitted": None,
                "gradedategraded": None,
                "gradehiddenbydate": False,
                "gradeneedsupdate": False,
                "gradeishidden": False,
                "gradeislocked": False,
                "gradeisoverridden": False,
                "gradeformatted": "-" if total is None else f"{total:.2f}",
                "grademin": 0,
                "grademax": 100,
                "rangeformatted": "0&ndash;100",
                "percentageformatted": "-" if total is None else f"{total:.2f} %",
                "feedback": "",
                "feedbackformat": 0,
            }
        )
        return {
            "courseid": cid,
            "courseidnumber": course["idnumber"],
            "userid": uid,
            "userfullname": f"{first} {last}",
            "useridnumber": self._sis(uid),
            "maxdepth": 2,
            "gradeitems": items,
        }

    def _grade_item(
        self, cid: int, a: AssignSpec, raw: float | None, work: StudentWork, weight: float
    ) -> dict:
        scale = a.grade < 0
        grademin = 1 if scale else 0
        grademax = int(a.grademax)
        if raw is None:
            formatted, percent = "-", "-"
        elif scale:
            formatted = SCALE_ITEMS[int(raw) - 1]
            percent = f"{(raw - 1) / (grademax - 1) * 100:.2f} %"
        else:
            formatted = f"{raw:.2f}"
            percent = f"{raw / grademax * 100:.2f} %"
            if a.kind == "pass":
                # moodle-api.md §3.5: with a pass grade, gradeformatted carries an HTML icon.
                passed = raw >= PASS_GRADE
                icon = "fa-check text-success" if passed else "fa-xmark text-danger"
                word = "Pass" if passed else "Fail"
                formatted = (
                    f'<i class="icon fa {icon} fa-fw " title="{word}" role="img" '
                    f'aria-label="{word}"></i>{formatted}'
                )
        item = {
            "id": 2_000_000 + a.id,
            "itemname": self._assignment_json(cid, a)["name"],
            "itemtype": "mod",
            "itemmodule": "assign",
            "iteminstance": a.id,
            "itemnumber": 0,
            "idnumber": "",
            "categoryid": 100 + cid,
            "outcomeid": None,
            "scaleid": None,  # moodle-api.md §3.5: null even for the scale-graded item
            "locked": False,
            "cmid": a.cmid,
            "weightraw": weight,
            "weightformatted": f"{weight * 100:.2f} %",
            "graderaw": raw,
            "gradedatesubmitted": (
                work.submission["timemodified"]
                if work.submission and work.submission["status"] == "submitted"
                else None
            ),
            "gradedategraded": work.grade["timemodified"] if work.grade else None,
            "gradehiddenbydate": False,
            "gradeneedsupdate": False,
            "gradeishidden": False,
            "gradeislocked": False,
            "gradeisoverridden": False,
            "gradeformatted": formatted,
            "grademin": grademin,
            "grademax": grademax,
            "rangeformatted": f"{grademin}&ndash;{grademax}",
            "percentageformatted": percent,
            "feedback": "" if raw is None else "<p>Well done.</p>",
            "feedbackformat": 1,
        }
        if raw is None:
            item["status"] = "novalue"
        return item

    # ---- completion -------------------------------------------------------------------------

    def page_cmid(self, course_id: int) -> int:
        return 700_000 + course_id

    def completion_statuses(self, course_id: int, uid: int) -> list[dict]:
        """``core_completion_get_activities_completion_status`` (moodle-api.md §3.9): only
        activities with completion tracking; state 0..3."""
        out = []
        for a in self.assign_specs(course_id):
            if a.completion is None:
                continue
            work = self.work(course_id, a, uid)
            state, at = 0, 0
            if a.completion == "completionsubmit":
                sub = work.submission
                if sub and sub["status"] == "submitted":
                    state, at = 1, sub["timemodified"]
            elif work.grade is not None:
                at = work.grade["timemodified"]
                if a.completion == "completionusegrade":
                    state = 1
                else:
                    state = 2 if (_number(work.grade["grade"]) or 0.0) >= PASS_GRADE else 3
            out.append(self._status(a.cmid, "assign", a.id, state, at, 2, a.completion))
        d = _Draw(self.seed, "page", course_id, uid)
        done = d[0] < 0.6
        at = _TERM_START + int(d[1] * (ANCHOR - _TERM_START - 3600)) if done else 0
        out.append(self._status(self.page_cmid(course_id), "page", course_id, int(done), at, 1))
        return out

    @staticmethod
    def _status(
        cmid: int, modname: str, instance: int, state: int, at: int, tracking: int, rule=None
    ) -> dict:
        details = []
        if rule is not None:
            details.append(
                {
                    "rulename": rule,
                    "rulevalue": {"status": state, "description": rule.removeprefix("completion")},
                }
            )
        return {
            "cmid": cmid,
            "modname": modname,
            "instance": instance,
            "state": state,
            "timecompleted": at,
            "tracking": tracking,
            "overrideby": None,
            "valueused": rule == "completionpassgrade",
            "hascompletion": True,
            "isautomatic": tracking == 2,
            "istrackeduser": True,
            "uservisible": True,
            "details": details,
            "isoverallcomplete": state in (1, 2),
        }

    # ---- course contents and attendance -------------------------------------------------------

    def attendance_id(self, course_id: int) -> int:
        return 50 + course_id

    def attendance_cmid(self, course_id: int) -> int:
        return 800_000 + course_id

    def attendance_course(self, attendance_id: int) -> int | None:
        cid = attendance_id - 50
        return cid if self.has_course(cid) else None

    def contents(self, course_id: int) -> list[dict]:
        """``core_course_get_contents``: one section listing the course's modules (the shape is
        not in moodle-api.md; field names follow core_course_external, unverified)."""
        modules = [
            self._module(a.cmid, "assign", a.id, self._assignment_json(course_id, a)["name"])
            for a in self.assign_specs(course_id)
        ]
        modules.append(self._module(self.page_cmid(course_id), "page", course_id, "Syllabus"))
        modules.append(
            self._module(
                self.attendance_cmid(course_id),
                "attendance",
                self.attendance_id(course_id),
                "Attendance",
            )
        )
        return [
            {
                "id": 90_000 + course_id,
                "name": "General",
                "visible": 1,
                "summary": "",
                "summaryformat": 1,
                "section": 0,
                "hiddenbynumsections": 0,
                "uservisible": True,
                "modules": modules,
            }
        ]

    @staticmethod
    def _module(cmid: int, modname: str, instance: int, name: str) -> dict:
        return {
            "id": cmid,
            "url": f"{WWWROOT}/mod/{modname}/view.php?id={cmid}",
            "name": name,
            "instance": instance,
            "contextid": cmid + 1_000_000,
            "visible": 1,
            "uservisible": True,
            "visibleoncoursepage": 1,
            "modicon": f"{WWWROOT}/theme/image.php/boost/{modname}/1/monologo",
            "modname": modname,
            "modplural": modname.capitalize() + "s",
            "indent": 0,
            "onclick": "",
            "afterlink": None,
            "customdata": '""',
            "noviewlink": False,
            "completion": 2 if modname == "assign" else 1,
            "downloadcontent": 1,
            "dates": [],
        }

    def attendance_statuses(self, attendance_id: int) -> list[dict]:
        """Per-instance statuses (blackboard-moodle-attendance.md §2a get_session extras)."""
        return [
            {
                "id": attendance_id * 10 + n + 1,
                "attendanceid": attendance_id,
                "acronym": acronym,
                "description": description,
                "grade": grade,
                "visible": 1,
                "deleted": 0,
                "setnumber": 0,
            }
            for n, (acronym, description, grade) in enumerate(ATTENDANCE_STATUSES)
        ]

    def session_time(self, course_id: int, n: int) -> int:
        # Weekly, Tuesdays 23:30 UTC for odd sessions (a late-evening class: its UTC date is
        # what the canonical row keeps), 14:00 UTC otherwise. The last one is in the future.
        if n == SESSIONS_PER_COURSE - 1:
            return ANCHOR + 7 * _DAY
        hour = (23, 30) if n % 2 else (14, 0)
        return _TERM_START + (8 + 7 * n) * _DAY + hour[0] * 3600 + hour[1] * 60

    def sessions(self, attendance_id: int) -> list[dict]:
        """``mod_attendance_get_sessions``: every session with statuses, log and users, id ASC
        (blackboard-moodle-attendance.md §2a; served as a JSON list — the doc marks that
        unverified). ``statusid`` and log ``id`` are strings; unmarked students have no row."""
        course_id = self.attendance_course(attendance_id)
        assert course_id is not None
        statuses = self.attendance_statuses(attendance_id)
        students = [
            u for u in self.enrolled_users(course_id) if u["roles"][0]["shortname"] == "student"
        ]
        out = []
        for n in range(SESSIONS_PER_COURSE):
            sid = attendance_id * 100 + n + 1
            when = self.session_time(course_id, n)
            taken = when < ANCHOR
            log = []
            if taken:
                for u in students:
                    d = _Draw(self.seed, "att", sid, u["id"])
                    if d[0] < 0.1:
                        continue  # not marked: no row (unmarked != absent)
                    r = d[1]
                    status = statuses[0 if r < 0.7 else 2 if r < 0.8 else 3 if r < 0.85 else 1]
                    log.append(
                        {
                            "studentid": u["id"],
                            "statusid": str(status["id"]),
                            "remarks": "",
                            "id": str(sid * 10_000 + u["id"] % 10_000),
                        }
                    )
            out.append(
                {
                    "id": sid,
                    "attendanceid": attendance_id,
                    "groupid": 0,
                    "sessdate": when,
                    "duration": 5400,
                    "lasttaken": when + 3600 if taken else 0,
                    "lasttakenby": 10_000 + 10 * self._index(course_id) if taken else 0,
                    "timemodified": when + 3600 if taken else when - 30 * _DAY,
                    "description": f"<p>Session {n + 1}</p>",
                    "descriptionformat": 1,
                    "studentscanmark": 0,
                    "absenteereport": 1,
                    "autoassignstatus": 0,
                    "preventsharedip": 0,
                    "preventsharediptime": 0,
                    "statusset": 0,
                    "includeqrcode": 0,
                    "studentsearlyopentime": 0,
                    "courseid": course_id,
                    "statuses": statuses,
                    "attendance_log": log,
                    "users": [
                        {"id": u["id"], "firstname": u["firstname"], "lastname": u["lastname"]}
                        for u in students
                    ],
                }
            )
        return out

    # ---- PII and counts -----------------------------------------------------------------------

    def pii_values(self) -> set[str]:
        """Every name, username, email and SIS id (``idnumber``) string on the site.

        Tests scan serving tables, logs and spans for these; none may appear there.
        """
        values: set[str] = set()
        for cid in self._ids:
            for u in self._course(cid).users:
                for key in ("username", "firstname", "lastname", "fullname", "email"):
                    values.add(u[key])
                if u.get("idnumber"):
                    values.add(u["idnumber"])
        return values

    def counts(self) -> dict[str, int]:
        """Totals per kind of record across every course."""
        ids = self._ids
        subs = grades = 0
        for cid in ids:
            for a in self.assign_specs(cid):
                for uid in self.student_ids(cid):
                    w = self.work(cid, a, uid)
                    subs += w.submission is not None
                    grades += w.grade is not None
        return {
            "courses": len(ids),
            "enrolments": sum(len(self.enrolled_users(c)) for c in ids),
            "assignments": sum(len(self.assign_specs(c)) for c in ids),
            "submissions": subs,
            "grades": grades,
            "attendance_logs": sum(
                len(s["attendance_log"]) for c in ids for s in self.sessions(self.attendance_id(c))
            ),
        }


def build_institution(
    *,
    seed: int,
    courses: int,
    students_per_course: int,
    assignments_per_course: int | None = None,
    shared_sis_ids: tuple[str, ...] = (),
) -> Institution:
    """Build the site for a seed; the same arguments always give the same data.

    ``assignments_per_course`` defaults to 6; the first five are one of each kind (points, scale,
    pass grade, no submission plugins, no due date). Every fifth course (index 1, 6, ...) is
    hidden (``visible`` 0). ``shared_sis_ids`` become the ``idnumber`` of the first students of
    the first course.
    """
    return Institution(
        seed=seed,
        courses=courses,
        students_per_course=students_per_course,
        assignments_per_course=6 if assignments_per_course is None else assignments_per_course,
        shared_sis_ids=shared_sis_ids,
    )
