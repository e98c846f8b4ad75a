"""What the OneRoster source stages, declared once for both transports (CSV bundle and REST).

Every stream has the same text columns whichever way it arrived, named as in the CSV binding, so
one mapping serves both. Sources of the facts:

* CSV: 1EdTech OneRoster 1.2 CSV binding (https://www.imsglobal.org/spec/oneroster/v1p2/bind/csv),
  "CSV Tables": the header row of each file names the columns in the table's order; a bundle
  may append extension columns after them (ignored here). Lists inside a cell are comma-joined
  (quoted); ``userIds`` is ``{type:identifier}`` pairs.
* REST: OneRoster 1.2 REST binding (https://www.imsglobal.org/spec/oneroster/v1p2/bind/rest):
  collections under ``/ims/oneroster/rostering/v1p2`` and ``/ims/oneroster/gradebook/v1p2``,
  records under the plural name (``{"users": [...]}``), references as GUIDRef objects
  (``{"href", "sourcedId", "type"}``), lists as arrays; a user's roles are an array
  (``roleType`` primary|secondary), not a separate collection.

``scope`` says which staging partition a stream lands in: ``district`` streams (orgs, sessions,
catalog courses, users, categories) go to the district partition (``@district``, or ``@delta``
for a delta); ``class`` streams (the class row, its enrollments, line items, results) to the
class's own partition. ``header`` is the spec's column order checked against a bundle's header
row (a prefix: extension columns may follow); ``columns`` the staged ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from connectors.endpoint import Endpoint

Domain = Literal["roster", "gradebook"]
DOMAINS: tuple[Domain, ...] = ("roster", "gradebook")
ROSTER = "ims/oneroster/rostering/v1p2"
GRADEBOOK = "ims/oneroster/gradebook/v1p2"

# How a REST JSON value becomes the CSV cell text: ``text`` as is (JSON spelling for numbers and
# booleans), ``ref`` a GUIDRef's sourcedId, ``refs`` GUIDRefs' sourcedIds comma-joined, ``list``
# strings comma-joined, ``user_ids`` ``{type:identifier}`` pairs, ``primary_role`` the role of
# the user's ``roleType=primary`` role (else the first).
How = Literal["text", "ref", "refs", "list", "user_ids", "primary_role"]


@dataclass(frozen=True)
class Stream:
    name: str
    domain: Domain
    scope: Literal["district", "class"]
    file: str
    header: tuple[str, ...]
    fields: tuple[tuple[str, str, How], ...]  # (staged column, REST JSON path, how)
    rest_path: str
    rest_key: str
    class_path: str | None = None  # per-class REST collection (full pulls)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column for column, _, _ in self.fields)

    @property
    def endpoint(self) -> Endpoint:
        """The staged shape as the shared loop's Endpoint (fields = staged column names)."""
        return Endpoint(
            stream=self.name,
            domain=self.domain,
            path=self.rest_path,
            fields=self.columns,
            key=("sourcedId",),
            paging="offset",
        )


def _t(*names: str) -> tuple[tuple[str, str, How], ...]:
    return tuple((n, n, "text") for n in names)


_BASE = _t("sourcedId", "status", "dateLastModified")

ORGS = Stream(
    "orgs", "roster", "district", "orgs",
    header=("sourcedId", "status", "dateLastModified", "name", "type", "identifier",
            "parentSourcedId"),
    fields=(*_BASE, *_t("name", "type", "identifier"), ("parentSourcedId", "parent", "ref")),
    rest_path=f"{ROSTER}/orgs", rest_key="orgs",
)  # fmt: skip
SESSIONS = Stream(
    "academic_sessions", "roster", "district", "academicSessions",
    header=("sourcedId", "status", "dateLastModified", "title", "type", "startDate", "endDate",
            "parentSourcedId", "schoolYear"),
    fields=(*_BASE, *_t("title", "type", "startDate", "endDate"),
            ("parentSourcedId", "parent", "ref"), ("schoolYear", "schoolYear", "text")),
    rest_path=f"{ROSTER}/academicSessions", rest_key="academicSessions",
)  # fmt: skip
COURSES = Stream(
    "catalog_courses", "roster", "district", "courses",
    header=("sourcedId", "status", "dateLastModified", "schoolYearSourcedId", "title",
            "courseCode", "grades", "orgSourcedId", "subjects", "subjectCodes"),
    fields=(*_BASE, ("schoolYearSourcedId", "schoolYear", "ref"), *_t("title", "courseCode"),
            ("grades", "grades", "list"), ("orgSourcedId", "org", "ref")),
    rest_path=f"{ROSTER}/courses", rest_key="courses",
)  # fmt: skip
USERS = Stream(
    "users", "roster", "district", "users",
    header=("sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds",
            "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone",
            "agentSourcedIds", "grades", "password", "userMasterIdentifier",
            "resourceSourcedIds", "preferredGivenName", "preferredMiddleName",
            "preferredFamilyName", "primaryOrgSourcedId", "pronouns"),
    # Names, phone numbers and passwords are never staged: the canonical model has no place for
    # them. ``role`` comes from roles.csv (CSV) or the user's roles array (REST).
    fields=(*_BASE, *_t("enabledUser", "username"), ("userIds", "userIds", "user_ids"),
            *_t("identifier", "email"), ("grades", "grades", "list"),
            ("primaryOrgSourcedId", "primaryOrg", "ref"), ("role", "roles", "primary_role")),
    rest_path=f"{ROSTER}/users", rest_key="users",
)  # fmt: skip
ROLES_HEADER = ("sourcedId", "status", "dateLastModified", "userSourcedId", "roleType", "role",
                "beginDate", "endDate", "orgSourcedId", "userProfileSourcedId")  # fmt: skip
CLASSES = Stream(
    "classes", "roster", "class", "classes",
    header=("sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId",
            "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds",
            "subjects", "subjectCodes", "periods"),
    fields=(*_BASE, ("title", "title", "text"),
            ("grades", "grades", "list"), ("courseSourcedId", "course", "ref"),
            *_t("classCode", "classType"), ("schoolSourcedId", "school", "ref"),
            ("termSourcedIds", "terms", "refs")),
    rest_path=f"{ROSTER}/classes", rest_key="classes", class_path=f"{ROSTER}/classes/{{id}}",
)  # fmt: skip
ENROLLMENTS = Stream(
    "enrollments", "roster", "class", "enrollments",
    header=("sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId",
            "userSourcedId", "role", "primary", "beginDate", "endDate"),
    fields=(*_BASE, ("classSourcedId", "class", "ref"), ("schoolSourcedId", "school", "ref"),
            ("userSourcedId", "user", "ref"), *_t("role", "primary", "beginDate", "endDate")),
    rest_path=f"{ROSTER}/enrollments", rest_key="enrollments",
    class_path=f"{ROSTER}/schools/{{school}}/classes/{{id}}/enrollments",
)  # fmt: skip
CATEGORIES = Stream(
    "categories", "gradebook", "district", "categories",
    header=("sourcedId", "status", "dateLastModified", "title"),
    fields=(*_BASE, ("title", "title", "text")),
    rest_path=f"{GRADEBOOK}/categories", rest_key="categories",
)  # fmt: skip
LINE_ITEMS = Stream(
    "line_items", "gradebook", "class", "lineItems",
    header=("sourcedId", "status", "dateLastModified", "title", "description", "assignDate",
            "dueDate", "classSourcedId", "categorySourcedId", "gradingPeriodSourcedId",
            "resultValueMin", "resultValueMax"),
    fields=(*_BASE, *_t("title", "assignDate", "dueDate"), ("classSourcedId", "class", "ref"),
            ("categorySourcedId", "category", "ref"),
            ("gradingPeriodSourcedId", "gradingPeriod", "ref"),
            *_t("resultValueMin", "resultValueMax")),
    rest_path=f"{GRADEBOOK}/lineItems", rest_key="lineItems",
    class_path=f"{GRADEBOOK}/classes/{{id}}/lineItems",
)  # fmt: skip
RESULTS = Stream(
    "results", "gradebook", "class", "results",
    header=("sourcedId", "status", "dateLastModified", "lineItemSourcedId", "studentSourcedId",
            "scoreStatus", "score", "scoreDate", "comment"),
    # ``classSourcedId``: REST 1.2 results carry their class; a CSV result row does not, so the
    # bundle reader fills it from the row's line item.
    fields=(*_BASE, ("lineItemSourcedId", "lineItem", "ref"),
            ("studentSourcedId", "student", "ref"), ("classSourcedId", "class", "ref"),
            *_t("scoreStatus", "score", "scoreDate", "comment")),
    rest_path=f"{GRADEBOOK}/results", rest_key="results",
    class_path=f"{GRADEBOOK}/classes/{{id}}/results",
)  # fmt: skip

STREAMS: tuple[Stream, ...] = (
    ORGS, SESSIONS, COURSES, USERS, CLASSES, ENROLLMENTS, CATEGORIES, LINE_ITEMS, RESULTS,
)  # fmt: skip
# Files a bundle may carry that are checked but not staged: demographics is sensitive PII with
# no canonical column; scoreScales has no canonical table yet.
CHECKED_ONLY: dict[str, tuple[str, ...]] = {
    "roles": ROLES_HEADER,
    "demographics": ("sourcedId", "status", "dateLastModified", "birthDate", "sex"),
    "scoreScales": ("sourcedId", "status", "dateLastModified", "title"),
}
HEADERS: dict[str, tuple[str, ...]] = {
    **{s.file: s.header for s in STREAMS},
    **CHECKED_ONLY,
}
# Every file name the 1.2 manifest may list (``file.<name>``).
MANIFEST_FILES = (
    "academicSessions", "categories", "classes", "classResources", "courses", "courseResources",
    "demographics", "enrollments", "lineItemLearningObjectiveIds", "lineItems",
    "lineItemScoreScales", "orgs", "resources", "resultLearningObjectiveIds", "results",
    "resultScoreScales", "roles", "scoreScales", "userProfiles", "userResources", "users",
)  # fmt: skip


def streams_for(domain: str, scope: str | None = None) -> tuple[Stream, ...]:
    return tuple(s for s in STREAMS if s.domain == domain and (scope is None or s.scope == scope))
