"""The scope registry: every scope the platform grants, what it lets an app do, in plain language.

Two families share one vocabulary:

- SMART on FHIR resource scopes, ``<context>/<Resource>.<permissions>[?param=value]``, in v1 syntax
  (``patient/Observation.read``) and v2 syntax (``patient/Observation.rs?category=laboratory``).
  The context is ``patient`` (one patient, chosen at launch), ``user`` (what the signed-in user may
  see) or ``system`` (a backend service, no user). v1 ``read`` means v2 ``rs``, ``write`` means
  ``cud``, ``*`` means ``cruds``.
- Named scopes: SMART's launch and identity scopes (``launch/patient``, ``openid``, ``fhirUser``,
  ``offline_access``) and the marketplace's workflow scopes (``appointments.write``, ...).

A tier lists *patterns* in the same syntax (``patient/*.rs``); a requested scope is allowed when one
pattern covers it. Nothing here touches the database, so docs, the consent screen, the token
endpoint and the API all read the same definitions.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

# The FHIR resources the platform serves, and the data class each belongs to.
RESOURCE_DATA_CLASSES = {
    "Patient": "demographics",
    "Practitioner": "care_team",
    "Organization": "care_team",
    "Observation": "observations",
    "Schedule": "scheduling",
    "Slot": "scheduling",
    "Appointment": "appointments",
    "Coverage": "coverage",
    "Consent": "consent",
}
# Observation categories narrow the data class (SMART v2 ``?category=``).
OBSERVATION_CATEGORY_CLASSES = {"laboratory": "lab_results", "vital-signs": "vital_signs"}
SEARCH_PARAMETERS_IN_SCOPES = {"Observation": {"category"}}


@dataclass(frozen=True)
class DataClass:
    key: str
    label: str  # how the consent screen names it: "your lab results"
    description: str


DATA_CLASSES = {
    dc.key: dc
    for dc in (
        DataClass("demographics", "your name, birth date and contact details", "Patient demographics"),
        DataClass("care_team", "the clinicians and organizations that care for you", "Practitioners and organizations"),
        DataClass("all_records", "all of your health records", "Every resource type the platform serves"),
        DataClass("observations", "your lab results and vital signs", "All observations"),
        DataClass("lab_results", "your lab results", "Laboratory observations (LOINC-coded, with reference ranges)"),
        DataClass("vital_signs", "your vital signs", "Vital-sign observations (blood pressure, heart rate, weight...)"),
        DataClass("scheduling", "clinicians' schedules and free appointment slots", "Schedules and slots"),
        DataClass("appointments", "your appointments", "Appointments"),
        DataClass("coverage", "your insurance coverage", "Coverage and eligibility"),
        DataClass("consent", "the consents you have given", "Consent records"),
        DataClass("identity", "who you are when you sign in", "Sign-in identity (OpenID Connect)"),
        DataClass("access", "how long the app stays connected", "Session and offline access"),
        DataClass("events", "notifications about changes", "Events and webhooks"),
    )
}

ACTION_WORDS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_SMART = re.compile(
    r"^(?P<context>patient|user|system)/(?P<resource>\*|[A-Z][A-Za-z]+)\."
    r"(?P<permissions>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>[^\s]+))?$"
)


class UnknownScope(ValueError):
    """The text is not a scope this platform knows."""


@dataclass(frozen=True)
class Scope:
    """One scope, parsed. ``actions`` is a subset of ``cruds``; named scopes carry their own."""

    name: str
    kind: str  # "resource" | "launch" | "identity" | "access" | "workflow"
    data_class: str
    actions: frozenset
    sentence: str  # the plain-language line on the consent screen
    context: str = ""  # patient | user | system, for resource scopes
    resource: str = ""  # a resource type or "*"
    params: tuple = field(default=())  # (("category", "laboratory"),)
    version: int = 0  # SMART permission syntax: 1 or 2; 0 for named scopes
    optional: bool = True  # may the patient untick it on the consent screen?

    @property
    def is_resource(self) -> bool:
        return self.kind == "resource"

    @property
    def is_system(self) -> bool:
        return self.context == "system"

    @property
    def is_write(self) -> bool:
        return bool(self.actions & {"c", "u", "d", "write", "share", "manage"})

    def covers(self, other: "Scope") -> bool:
        """Whether this scope (typically a tier's pattern) allows everything ``other`` asks."""
        if not self.is_resource or not other.is_resource:
            return self.name == other.name
        return (
            self.context == other.context
            and self.resource in {"*", other.resource}
            and other.actions <= self.actions
            and (not self.params or self.params == other.params)
        )


@dataclass(frozen=True)
class NamedScope:
    name: str
    kind: str
    data_class: str
    actions: tuple
    sentence: str
    optional: bool = True
    docs: str = ""


NAMED_SCOPES = {
    s.name: s
    for s in (
        NamedScope(
            "launch/patient", "launch", "access", (), "Ask you which patient record to use when it starts.", False
        ),
        NamedScope("openid", "identity", "identity", ("read",), "Know that it is you who signed in.", False),
        NamedScope("fhirUser", "identity", "identity", ("read",), "See your name and the kind of account you use."),
        NamedScope("profile", "identity", "identity", ("read",), "See your name and email address."),
        NamedScope(
            "offline_access",
            "access",
            "access",
            (),
            "Stay connected until you revoke it, even when you are not using the app.",
        ),
        NamedScope("online_access", "access", "access", (), "Stay connected only while you are using the app."),
        NamedScope("appointments.read", "workflow", "appointments", ("read",), "See your appointments."),
        NamedScope(
            "appointments.write", "workflow", "appointments", ("create", "update"), "Book and cancel visits for you."
        ),
        NamedScope("lab_results.read", "workflow", "lab_results", ("read",), "See lab results shared with it."),
        NamedScope(
            "lab_results.share",
            "workflow",
            "lab_results",
            ("share",),
            "Share one of your lab results with another organization, for a limited time.",
        ),
        NamedScope("consent.read", "workflow", "consent", ("read",), "See whether you have consented to data sharing."),
        NamedScope(
            "consent.write",
            "workflow",
            "consent",
            ("create", "update"),
            "Record or revoke a consent on your behalf from a signed form (providers only).",
        ),
        NamedScope(
            "eligibility.read", "workflow", "coverage", ("read",), "Check your insurance eligibility with your payer."
        ),
        NamedScope("events.read", "workflow", "events", ("read",), "Read the feed of events about its data."),
        NamedScope(
            "webhooks.manage", "workflow", "events", ("manage",), "Manage where the platform sends it notifications."
        ),
    )
}


def _resource_sentence(context: str, resource: str, actions: frozenset, data_class: str) -> str:
    verbs = []
    if actions & {"r", "s"}:
        verbs.append("see")
    if actions & {"c", "u"}:
        verbs.append("add and change")
    if "d" in actions:
        verbs.append("delete")
    verb = (", ".join(verbs[:-1]) + " and " + verbs[-1]) if len(verbs) > 1 else (verbs[0] if verbs else "use")
    what = DATA_CLASSES[data_class].label
    if context == "patient":
        return f"{verb.capitalize()} {what}."
    # "your lab results" -> "lab results", "all of your health records" -> "all health records"
    what = what.replace("of your ", "").replace("your ", "").replace("for you", "for them")
    if context == "user":
        return f"{verb.capitalize()} {what} of the patients you can access."
    return f"{verb.capitalize()} {what} of every patient, as a backend service with no one signed in."


def parse(name: str) -> Scope:
    """Parse one scope; raise ``UnknownScope`` saying why when it is not one the platform knows."""
    if name in NAMED_SCOPES:
        named = NAMED_SCOPES[name]
        return Scope(
            name=name,
            kind=named.kind,
            data_class=named.data_class,
            actions=frozenset(named.actions),
            sentence=named.sentence,
            optional=named.optional,
        )
    match = _SMART.match(name)
    if not match:
        raise UnknownScope(f"“{name}” is not a scope this platform knows.")
    context, resource, permissions, query = match.group("context", "resource", "permissions", "query")
    if not permissions:
        raise UnknownScope(f"“{name}” grants no permission: use v1 read/write or v2 letters c, r, u, d, s in order.")
    if resource != "*" and resource not in RESOURCE_DATA_CLASSES:
        raise UnknownScope(
            f"“{name}”: {resource} is not served. Supported resources: {', '.join(sorted(RESOURCE_DATA_CLASSES))}."
        )
    version = 1 if permissions in V1_PERMISSIONS else 2
    if version == 1 and query:
        raise UnknownScope(f"“{name}”: search parameters need SMART v2 permissions (e.g. .rs?category=…).")
    actions = frozenset(V1_PERMISSIONS.get(permissions, permissions))
    params = tuple(sorted(parse_qsl(query or "", keep_blank_values=True)))
    allowed_params = SEARCH_PARAMETERS_IN_SCOPES.get(resource, set())
    for key, _value in params:
        if key not in allowed_params:
            raise UnknownScope(f"“{name}”: {resource} scopes cannot be narrowed by {key}.")
    data_class = "all_records" if resource == "*" else RESOURCE_DATA_CLASSES[resource]
    if resource == "Observation" and params:
        category = dict(params).get("category", "")
        if category not in OBSERVATION_CATEGORY_CLASSES:
            raise UnknownScope(f"“{name}”: category must be one of {', '.join(sorted(OBSERVATION_CATEGORY_CLASSES))}.")
        data_class = OBSERVATION_CATEGORY_CLASSES[category]
    return Scope(
        name=name,
        kind="resource",
        data_class=data_class,
        actions=actions,
        sentence=_resource_sentence(context, resource, actions, data_class),
        context=context,
        resource=resource,
        params=params,
        version=version,
    )


def parse_many(names) -> tuple[list[Scope], list[str]]:
    """Parse a list (or a space-separated string); return the scopes and the errors, in order."""
    if isinstance(names, str):
        names = names.split()
    parsed, problems = [], []
    for name in dict.fromkeys(names):
        try:
            parsed.append(parse(name))
        except UnknownScope as exc:
            problems.append(str(exc))
    return parsed, problems


def allowed_by(patterns, scope: Scope) -> bool:
    for pattern in patterns:
        try:
            if parse(pattern).covers(scope):
                return True
        except UnknownScope:
            continue
    return False


def scope_grants(granted, *, context: str, resource: str, action: str, params: dict | None = None) -> bool:
    """Whether the scopes of a token allow ``action`` (one of ``cruds``) on ``resource`` in ``context``.

    A v2 scope with a search parameter (``?category=laboratory``) grants only data matching it; the
    caller passes what the request is about in ``params`` (e.g. ``{"category": "laboratory"}``).
    """
    wanted = dict(params or {})
    for name in granted:
        try:
            scope = parse(name)
        except UnknownScope:
            continue
        if not scope.is_resource or scope.context != context or action not in scope.actions:
            continue
        if scope.resource not in {"*", resource}:
            continue
        if scope.params and any(wanted.get(k) != v for k, v in scope.params):
            continue
        return True
    return False


def grouped_by_data_class(scopes: list[Scope]) -> list[tuple[DataClass, list[Scope]]]:
    """The consent screen's sections: each data class with the scopes that touch it, in registry order."""
    order = list(DATA_CLASSES)
    groups: dict[str, list[Scope]] = {}
    for scope in scopes:
        groups.setdefault(scope.data_class, []).append(scope)
    return [(DATA_CLASSES[key], groups[key]) for key in sorted(groups, key=order.index)]


def documented_scopes() -> list[Scope]:
    """Every named scope and one representative of each resource scope family, for docs and discovery."""
    examples = [
        "patient/*.rs",
        "patient/Patient.rs",
        "patient/Observation.rs",
        "patient/Observation.rs?category=laboratory",
        "patient/Observation.rs?category=vital-signs",
        "patient/Appointment.rs",
        "patient/Coverage.rs",
        "patient/Consent.rs",
        "user/*.rs",
        "system/*.rs",
        "patient/*.read",
        "user/*.read",
        "system/*.read",
    ]
    return [parse(name) for name in [*NAMED_SCOPES, *examples]]
