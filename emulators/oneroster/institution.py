"""A seeded synthetic school district that knows its own ground truth, as OneRoster 1.2 records.

Every record is a pure function of ``(seed, position)``; the same arguments always build the same
district. Records are kept in the **CSV shape** of the 1EdTech OneRoster 1.2 CSV binding (one flat
text value per column, ``None`` for an empty cell, lists as comma-joined text); the REST app turns
them into the JSON shape (``to_json``) and the bundle writer into files. Column lists follow the
1.2 CSV tables (https://www.imsglobal.org/spec/oneroster/v1p2/bind/csv, "CSV Tables"), written
here independently of the connector's own declaration so that contract tests compare two readings.

Layout (``s`` school, ``c`` course, ``k`` section, ``n`` student):

* orgs: ``district-1`` (district) and ``school-<s>`` (school, parent the district);
* academicSessions: ``sy-2026`` (schoolYear), ``term-fall-2026`` and ``term-spring-2027`` (term);
* courses ``course-<s>-<c>`` (catalog) and classes ``class-<s>-<c>-<k>``; a class's title carries a
  comma ("Algebra I, Period 2") and every third class runs in both terms (``termSourcedIds`` a
  comma list);
* users: students ``stu-<s>-<n>`` with SIS id ``S<s><n:05d>`` in ``identifier`` and ``userIds``
  (``{SIS:...}``) and a grade code cycling ``KG 01 … 05 PK UG 09 10 11 12 TK``; teachers
  ``tch-<s>-<c>-<k>`` (the primary teacher of that class) and ``aide-<s>`` (secondary teacher
  of every fourth class of the school, ``primary=false``);
* enrollments ``enr-<class>-<user>``; roles ``role-<user>`` (primary role at the school);
* gradebook: categories ``cat-hw``/``cat-test``; line items ``li-<class>-<j>`` (max score 10·(j+1));
  results ``res-<li>-<student>``, with every seventh missing and a scoreStatus cycle.

``version=2`` is the district a day later (``CHANGED_AT``): one student enrollment is
``tobedeleted``, one student moved up a grade, a new enrollment exists, one line item was renamed
and one of its results re-scored. ``changed(since)`` lists what a delta carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

BASE_MODIFIED = "2026-09-01T08:00:00.000Z"
CHANGED_AT = "2026-09-15T10:30:00.000Z"
SCHOOL_YEAR = ("sy-2026", "2026-2027", "schoolYear", "2026-08-24", "2027-06-11", None, "2027")
TERMS = (
    ("term-fall-2026", "Fall 2026", "term", "2026-08-24", "2027-01-15", "sy-2026", "2027"),
    ("term-spring-2027", "Spring 2027", "term", "2027-01-19", "2027-06-11", "sy-2026", "2027"),
)
GRADE_CODES = ("KG", "01", "02", "03", "04", "05", "PK", "UG", "09", "10", "11", "12", "TK")
SCORE_STATUSES = ("fully graded", "submitted", "partially graded", "exempt", "not submitted")
_SUBJECTS = (
    ("ALG1", "Algebra I", "Math"), ("ELA", "English Language Arts", "ELA"),
    ("BIO", "Biology", "Science"), ("HIST", "US History", "Social Studies"),
    ("ART", "Visual Art", "Arts"), ("SPAN", "Spanish I", "World Languages"),
)  # fmt: skip
_FIRST = ("Ava", "Liam", "Zoë", "Mateo", "Amara", "Kenji", "Priya", "Øystein", "Fatima", "Noah")
_LAST = ("Smith", "García", "O'Brien", "Nguyen", "Ñúñez", "Okafor", "Müller", "李", "Haddad")

# 1.2 CSV column order per file (the spec's tables, as read for this emulator).
COLUMNS: dict[str, tuple[str, ...]] = {
    "orgs": ("sourcedId", "status", "dateLastModified", "name", "type", "identifier",
             "parentSourcedId"),
    "academicSessions": ("sourcedId", "status", "dateLastModified", "title", "type", "startDate",
                         "endDate", "parentSourcedId", "schoolYear"),
    "courses": ("sourcedId", "status", "dateLastModified", "schoolYearSourcedId", "title",
                "courseCode", "grades", "orgSourcedId", "subjects", "subjectCodes"),
    "classes": ("sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId",
                "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds",
                "subjects", "subjectCodes", "periods"),
    "users": ("sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds",
              "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone",
              "agentSourcedIds", "grades", "password", "userMasterIdentifier",
              "resourceSourcedIds", "preferredGivenName", "preferredMiddleName",
              "preferredFamilyName", "primaryOrgSourcedId", "pronouns"),
    "roles": ("sourcedId", "status", "dateLastModified", "userSourcedId", "roleType", "role",
              "beginDate", "endDate", "orgSourcedId", "userProfileSourcedId"),
    "enrollments": ("sourcedId", "status", "dateLastModified", "classSourcedId",
                    "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate", "endDate"),
    "demographics": ("sourcedId", "status", "dateLastModified", "birthDate", "sex",
                     "americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican",
                     "nativeHawaiianOrOtherPacificIslander", "white",
                     "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity",
                     "countryOfBirthCode", "stateOfBirthAbbreviation", "cityOfBirth",
                     "publicSchoolResidenceStatus"),
    "categories": ("sourcedId", "status", "dateLastModified", "title", "weight"),
    "lineItems": ("sourcedId", "status", "dateLastModified", "title", "description",
                  "assignDate", "dueDate", "classSourcedId", "categorySourcedId",
                  "gradingPeriodSourcedId", "resultValueMin", "resultValueMax",
                  "schoolSourcedId"),
    "results": ("sourcedId", "status", "dateLastModified", "lineItemSourcedId",
                "studentSourcedId", "scoreStatus", "score", "scoreDate", "comment"),
}  # fmt: skip
FILES = tuple(COLUMNS)

Record = dict[str, str | None]


def _draw(*key: object) -> float:
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def _row(kind: str, **values: str | None) -> Record:
    unknown = set(values) - set(COLUMNS[kind])
    if unknown:
        raise KeyError(f"{kind}: unknown columns {sorted(unknown)}")
    return {c: values.get(c) for c in COLUMNS[kind]}


@dataclass(frozen=True)
class Change:
    """One change of version 2, for tests that compute the delta's ground truth."""

    file: str
    sourced_id: str
    what: str


class Institution:
    """The district's records per file, in CSV shape (see the module docstring)."""

    def __init__(
        self,
        *,
        seed: int = 1,
        schools: int = 2,
        courses_per_school: int = 2,
        sections_per_course: int = 2,
        students_per_class: int = 8,
        line_items_per_class: int = 3,
        version: int = 1,
        shared_sis_ids: tuple[str, ...] = (),
    ) -> None:
        if version not in (1, 2):
            raise ValueError("version is 1 (the bulk state) or 2 (a day later)")
        self.seed = seed
        self.schools = schools
        self.courses_per_school = courses_per_school
        self.sections_per_course = sections_per_course
        self.students_per_class = students_per_class
        self.line_items_per_class = line_items_per_class
        self.version = version
        self.shared_sis_ids = tuple(shared_sis_ids)

    # ---- structure -------------------------------------------------------------------------

    def _pool(self) -> int:
        """Students per school: each class draws ``students_per_class`` of them."""
        return max(self.students_per_class, self.students_per_class * 3 // 2)

    def _classes(self) -> list[tuple[int, int, int]]:
        return [
            (s, c, k)
            for s in range(self.schools)
            for c in range(self.courses_per_school)
            for k in range(self.sections_per_course)
        ]

    @staticmethod
    def class_id(s: int, c: int, k: int) -> str:
        return f"class-{s}-{c}-{k}"

    def _class_students(self, s: int, c: int, k: int) -> list[int]:
        pool = self._pool()
        start = (c * self.sections_per_course + k) * 5 % pool
        return sorted((start + i) % pool for i in range(self.students_per_class))

    def _sis(self, s: int, n: int) -> str:
        index = s * self._pool() + n
        if index < len(self.shared_sis_ids):
            return self.shared_sis_ids[index]
        return f"S{s}{n:05d}"

    # ---- files -------------------------------------------------------------------------------

    @cached_property
    def records(self) -> dict[str, list[Record]]:
        """Every file's rows (version applied); ``tobedeleted`` rows included."""
        out: dict[str, list[Record]] = {f: [] for f in FILES}
        m = BASE_MODIFIED
        out["orgs"].append(
            _row("orgs", sourcedId="district-1", status="active", dateLastModified=m,
                 name="Lakeside Unified, District 1", type="district", identifier="D001")
        )  # fmt: skip
        for s in range(self.schools):
            out["orgs"].append(
                _row("orgs", sourcedId=f"school-{s}", status="active", dateLastModified=m,
                     name=f"Lakeside School {s}", type="school", identifier=f"SCH{s:03d}",
                     parentSourcedId="district-1")
            )  # fmt: skip
        for sid, title, kind, start, end, parent, year in (SCHOOL_YEAR, *TERMS):
            out["academicSessions"].append(
                _row("academicSessions", sourcedId=sid, status="active", dateLastModified=m,
                     title=title, type=kind, startDate=start, endDate=end,
                     parentSourcedId=parent, schoolYear=year)
            )  # fmt: skip
        for s in range(self.schools):
            for n in range(self._pool()):
                self._student(out, s, n)
            out["users"].append(self._staff(f"aide-{s}", s, "aide"))
            out["roles"].append(self._role(f"aide-{s}", s, "aide"))
            for c in range(self.courses_per_school):
                code, title, subject = _SUBJECTS[c % len(_SUBJECTS)]
                grade = GRADE_CODES[(s + c) % len(GRADE_CODES)]
                out["courses"].append(
                    _row("courses", sourcedId=f"course-{s}-{c}", status="active",
                         dateLastModified=m, schoolYearSourcedId="sy-2026", title=title,
                         courseCode=f"{code}-{s}", grades=grade, orgSourcedId=f"school-{s}",
                         subjects=subject)
                )  # fmt: skip
        for s, c, k in self._classes():
            self._class(out, s, c, k)
        out["categories"] += [
            _row("categories", sourcedId="cat-hw", status="active", dateLastModified=m,
                 title="Homework", weight="0.4"),
            _row("categories", sourcedId="cat-test", status="active", dateLastModified=m,
                 title="Tests, quizzes", weight="0.6"),
        ]  # fmt: skip
        if self.version == 2:
            self._apply_changes(out)
        return out

    def _student(self, out: dict[str, list[Record]], s: int, n: int) -> None:
        uid = f"stu-{s}-{n}"
        sis = self._sis(s, n)
        first = _FIRST[(n + s) % len(_FIRST)]
        last = _LAST[(n * 7 + s) % len(_LAST)]
        login = f"{first.lower()}.{n}.{s}"
        out["users"].append(
            _row("users", sourcedId=uid, status="active", dateLastModified=BASE_MODIFIED,
                 enabledUser="false" if n % 11 == 10 else "true", username=login,
                 userIds=f"{{SIS:{sis}}}", givenName=first, familyName=last,
                 identifier=sis, email=f"{login}@students.lakeside.example",
                 grades=GRADE_CODES[(n + s) % len(GRADE_CODES)],
                 primaryOrgSourcedId=f"school-{s}")
        )  # fmt: skip
        out["roles"].append(self._role(uid, s, "student"))
        out["demographics"].append(
            _row("demographics", sourcedId=uid, status="active", dateLastModified=BASE_MODIFIED,
                 birthDate=f"{2010 + n % 8}-0{1 + n % 9}-1{n % 10}",
                 sex=("female", "male", "other", "unspecified")[n % 4])
        )  # fmt: skip

    def _staff(self, uid: str, s: int, kind: str) -> Record:
        first = _FIRST[len(uid) % len(_FIRST)]
        login = f"{kind}.{uid}"
        return _row(
            "users", sourcedId=uid, status="active", dateLastModified=BASE_MODIFIED,
            enabledUser="true", username=login, userIds=f"{{SIS:T-{uid}}}", givenName=first,
            familyName=_LAST[len(uid) % len(_LAST)], identifier=f"T-{uid}",
            email=f"{login}@lakeside.example", primaryOrgSourcedId=f"school-{s}",
        )  # fmt: skip

    @staticmethod
    def _role(uid: str, s: int, role: str) -> Record:
        return _row(
            "roles", sourcedId=f"role-{uid}", status="active", dateLastModified=BASE_MODIFIED,
            userSourcedId=uid, roleType="primary", role=role, orgSourcedId=f"school-{s}",
        )  # fmt: skip

    def _class(self, out: dict[str, list[Record]], s: int, c: int, k: int) -> None:
        cid = self.class_id(s, c, k)
        code, title, subject = _SUBJECTS[c % len(_SUBJECTS)]
        terms = "term-fall-2026,term-spring-2027" if (c + k) % 3 == 0 else "term-fall-2026"
        m = BASE_MODIFIED
        out["classes"].append(
            _row("classes", sourcedId=cid, status="active", dateLastModified=m,
                 title=f"{title}, Period {k + 1}", grades=GRADE_CODES[(s + c) % len(GRADE_CODES)],
                 courseSourcedId=f"course-{s}-{c}", classCode=f"{code}-{s}-{k + 1}",
                 classType="scheduled", location=None, schoolSourcedId=f"school-{s}",
                 termSourcedIds=terms, subjects=subject, periods=str(k + 1))
        )  # fmt: skip
        teacher = f"tch-{s}-{c}-{k}"
        out["users"].append(self._staff(teacher, s, "teacher"))
        out["roles"].append(self._role(teacher, s, "teacher"))
        begin, end = "2026-08-24", "2027-01-15"
        members = [(teacher, "teacher", "true")]
        if (c + k) % 4 == 0:
            members.append((f"aide-{s}", "teacher", "false"))
        members += [(f"stu-{s}-{n}", "student", "false") for n in self._class_students(s, c, k)]
        for uid, role, primary in members:
            out["enrollments"].append(
                _row("enrollments", sourcedId=f"enr-{cid}-{uid}", status="active",
                     dateLastModified=m, classSourcedId=cid, schoolSourcedId=f"school-{s}",
                     userSourcedId=uid, role=role, primary=primary, beginDate=begin,
                     endDate=end)
            )  # fmt: skip
        for j in range(self.line_items_per_class):
            li = f"li-{cid}-{j}"
            out["lineItems"].append(
                _row("lineItems", sourcedId=li, status="active", dateLastModified=m,
                     title=f"Unit {j + 1}, check-in", description=None,
                     assignDate=f"2026-09-{j + 2:02d}T08:00:00.000Z",
                     dueDate=f"2026-09-{j + 9:02d}T23:59:00.000Z", classSourcedId=cid,
                     categorySourcedId="cat-hw" if j % 2 == 0 else "cat-test",
                     gradingPeriodSourcedId="term-fall-2026", resultValueMin="0",
                     resultValueMax=f"{10.0 * (j + 1)}", schoolSourcedId=f"school-{s}")
            )  # fmt: skip
            for n in self._class_students(s, c, k):
                if (n + j) % 7 == 3:
                    continue
                status = SCORE_STATUSES[(n + j + c) % len(SCORE_STATUSES)]
                graded = status in ("fully graded", "partially graded")
                score = round(10.0 * (j + 1) * (0.4 + 0.6 * _draw(self.seed, li, n)), 1)
                out["results"].append(
                    _row("results", sourcedId=f"res-{li}-stu-{s}-{n}", status="active",
                         dateLastModified=m, lineItemSourcedId=li,
                         studentSourcedId=f"stu-{s}-{n}", scoreStatus=status,
                         score=f"{score}" if graded else None,
                         scoreDate=f"2026-09-{j + 10:02d}" if graded else None,
                         comment="Good work, keep going" if n % 5 == 0 else None)
                )  # fmt: skip

    # ---- version 2 ----------------------------------------------------------------------------

    def changes(self) -> list[Change]:
        """What version 2 changed (empty for version 1's district)."""
        s, c, k = self._classes()[0]
        cid = self.class_id(s, c, k)
        first, second = self._class_students(s, c, k)[:2]
        outsider = next(n for n in range(self._pool()) if n not in self._class_students(s, c, k))
        li = f"li-{cid}-0"
        scored = next(
            n for n in self._class_students(s, c, k)
            if (n + 0) % 7 != 3 and SCORE_STATUSES[(n + c) % len(SCORE_STATUSES)] == "fully graded"
        )  # fmt: skip
        return [
            Change("enrollments", f"enr-{cid}-stu-{s}-{first}", "tobedeleted"),
            Change("users", f"stu-{s}-{second}", "grade up"),
            Change("enrollments", f"enr-{cid}-stu-{s}-{outsider}", "added"),
            Change("lineItems", li, "renamed"),
            Change("results", f"res-{li}-stu-{s}-{scored}", "rescored"),
        ]

    def _apply_changes(self, out: dict[str, list[Record]]) -> None:
        at = CHANGED_AT
        for change in self.changes():
            rows = out[change.file]
            if change.what == "added":
                s, c, k = self._classes()[0]
                uid = change.sourced_id.split(f"enr-{self.class_id(s, c, k)}-", 1)[1]
                rows.append(
                    _row("enrollments", sourcedId=change.sourced_id, status="active",
                         dateLastModified=at, classSourcedId=self.class_id(s, c, k),
                         schoolSourcedId=f"school-{s}", userSourcedId=uid, role="student",
                         primary="false", beginDate="2026-09-15", endDate="2027-01-15")
                )  # fmt: skip
                continue
            row = next(r for r in rows if r["sourcedId"] == change.sourced_id)
            row["dateLastModified"] = at
            if change.what == "tobedeleted":
                row["status"] = "tobedeleted"
            elif change.what == "grade up":
                code = row["grades"] or "KG"
                row["grades"] = "01" if code in ("KG", "PK", "TK", "UG") else f"{int(code) + 1:02d}"
                # The SIS re-exports a changed user's roles with it: a delta users.csv row whose
                # roles.csv row is absent would leave the reader without the user's role.
                role = next(r for r in out["roles"] if r["userSourcedId"] == row["sourcedId"])
                role["dateLastModified"] = at
            elif change.what == "renamed":
                row["title"] = f"{row['title']} (revised)"
            elif change.what == "rescored":
                row["score"] = "0.5"

    def changed(self, since: str) -> dict[str, list[Record]]:
        """Rows modified after ``since`` (ISO text, compared as text: same format) per file."""
        return {
            f: [r for r in rows if (r["dateLastModified"] or "") > since]
            for f, rows in self.records.items()
        }

    # ---- lookups -----------------------------------------------------------------------------

    def class_ids(self) -> list[str]:
        return [self.class_id(s, c, k) for s, c, k in self._classes()]

    def get(self, file: str, sourced_id: str) -> Record | None:
        return self._index.get((file, sourced_id))

    @cached_property
    def _index(self) -> dict[tuple[str, str], Record]:
        return {(f, r["sourcedId"]): r for f, rows in self.records.items() for r in rows}

    def pii_values(self) -> set[str]:
        """Every name, email, username and SIS id string of the district."""
        values: set[str] = set()
        for u in self.records["users"]:
            for col in ("username", "givenName", "familyName", "identifier", "email"):
                if u[col]:
                    values.add(u[col])
        return values

    def counts(self) -> dict[str, int]:
        return {f: len(rows) for f, rows in self.records.items()}


def build_institution(**kwargs: object) -> Institution:
    return Institution(**kwargs)  # type: ignore[arg-type]
