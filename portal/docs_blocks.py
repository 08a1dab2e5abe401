"""Generated docs blocks read from the published API documents and from the sandbox's own data.

- ``workflow-endpoints``: every operation of every published version (``openapi/<version>.json``, the
  committed contract ``manage.py openapi_check`` holds the code to), with the scopes its view
  requires (from the URLconf: the view that serves the path) and a deep link into the reference.
- ``api-reference-<tag>``, one per tag of the documents (``api-reference-visits``, ...): the operations
  of one tag, each linking to its place in every version's reference; the endpoint pages show it.
- ``sandbox-samples``: resources of the seeded sandbox as the FHIR API serves them
  (``api.fhir.render.resource``, the FHIR views' own representation), chosen by stable ids.
- ``sandbox-inventory``: what the sandbox holds, counted, and the patients with no coverage.

Registered when ``portal.docs`` is imported (it imports this module last).

The reference is Swagger UI with ``deepLinking`` on, so an operation is at
``/api/reference/<version>/#/<tag>/<operationId>`` and a tag at ``/api/reference/<version>/#/<tag>``.
"""

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from api import openapi
from portal.docs import _json, block

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_PARAM_RE = re.compile(r"\{[^}/]+\}")


# --- The published operations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    version: str
    method: str  # upper case
    path: str  # as the document spells it: /api/v1/visits/{visit_id}
    operation_id: str
    tag: str  # the first tag: the one its deep link names
    summary: str
    scopes: tuple[str, ...]  # the named scopes its view requires for this method
    partner_types: tuple[str, ...]  # the partner types it is reserved to; () for every one

    @property
    def reference_url(self) -> str:
        return reference_url(self.version, self.tag, self.operation_id)

    @property
    def unversioned_path(self) -> str:
        """The path after ``/api/<version>``, its parameters unnamed: ``/visits/{}/cancel``."""
        return unversioned(self.path)


def unversioned(path: str) -> str:
    """``/api/v1/visits/{visit_id}/cancel`` -> ``/visits/{}/cancel``: how the same operation is
    recognized across versions and in prose that names its parameters differently (``{id}``)."""
    return _PARAM_RE.sub("{}", re.sub(r"^/api/v[0-9]+", "", path))


def reference_url(version: str, tag: str = "", operation_id: str = "") -> str:
    """The reference of ``version``; with ``tag`` (and ``operation_id``), Swagger UI's deep link to it."""
    base = reverse("api:reference", kwargs={"version": version})
    fragment = "/".join(quote(part, safe="") for part in (tag, operation_id) if part)
    return f"{base}#/{fragment}" if fragment else base


_documents: dict[Path, tuple[tuple[int, int], dict]] = {}
_documents_lock = threading.Lock()


def _document_version(version: str) -> tuple[tuple[int, int], dict]:
    """(the file's version, the document) of ``version``'s committed document, read again only when
    the file changes."""
    path = openapi.committed_path(version)
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    hit = _documents.get(path)
    if hit and hit[0] == key:
        return hit
    entry = (key, json.loads(path.read_text(encoding="utf-8")))
    with _documents_lock:
        _documents[path] = entry
    return entry


def published_document(version: str) -> dict:
    """The committed OpenAPI document of ``version``: what is published as that version's contract."""
    return _document_version(version)[1]


def view_class(path: str):
    """The view class the URLconf routes a documented ``path`` to (its parameters filled in), or None."""
    try:
        match = resolve(_PARAM_RE.sub("1", path))
    except Resolver404:
        return None
    return getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)


def _view_requirements(path: str, method: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(scopes, partner types) of the view serving ``path``, for ``method``: the same attributes the
    scope and policy layers read (``api.permissions``)."""
    view = view_class(path)
    required = getattr(view, "required_scopes", None) or []
    if isinstance(required, dict):
        required = required.get(method, [])
    return tuple(required), tuple(sorted(getattr(view, "allowed_partner_types", None) or ()))


def _documented(version: str):
    """(path, method, operation) of each operation of ``version``'s document, in document order."""
    for path, operations in published_document(version).get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in operations:
                yield path, method, operations[method]


_operations: dict[str, tuple[tuple[int, int], list[Operation]]] = {}


def published_operations(version: str | None = None) -> list[Operation]:
    """Every operation of every published version (or of ``version``), in document order. Resolves
    paths through the URLconf, so not for import time (``published_tags`` is); made again only when a
    document changes."""
    found = []
    for each in (version,) if version else openapi.VERSIONS:
        key, _document = _document_version(each)
        hit = _operations.get(each)
        if hit is None or hit[0] != key:
            hit = (key, _operations_of(each))
            _operations[each] = hit
        found += hit[1]
    return found


def _operations_of(version: str) -> list[Operation]:
    found = []
    for path, method, operation in _documented(version):
        scopes, partner_types = _view_requirements(path, method.upper())
        found.append(
            Operation(
                version=version,
                method=method.upper(),
                path=path,
                operation_id=operation["operationId"],
                tag=(operation.get("tags") or [""])[0],
                summary=operation.get("summary", ""),
                scopes=scopes,
                partner_types=partner_types,
            )
        )
    return found


def published_tags() -> list[str]:
    """Every tag of the published documents, in the order they first appear."""
    tags = (
        (operation.get("tags") or [""])[0] for version in openapi.VERSIONS for _p, _m, operation in _documented(version)
    )
    return list(dict.fromkeys(tag for tag in tags if tag))


@dataclass(frozen=True)
class EndpointRow:
    """One operation across versions: the same method on the same unversioned path."""

    method: str
    path: str  # the newest version's
    summary: str
    scopes: tuple[str, ...]
    partner_types: tuple[str, ...]
    versions: tuple[Operation, ...]  # oldest first


def endpoint_rows(tag: str | None = None) -> list[EndpointRow]:
    grouped: dict[tuple[str, str], list[Operation]] = {}
    for operation in published_operations():
        if tag is None or operation.tag == tag:
            grouped.setdefault((operation.unversioned_path, operation.method), []).append(operation)
    rows = []
    for operations in grouped.values():
        newest = operations[-1]
        rows.append(
            EndpointRow(
                method=newest.method,
                path=newest.path,
                summary=newest.summary,
                scopes=newest.scopes,
                partner_types=newest.partner_types,
                versions=tuple(operations),
            )
        )
    return rows


def _lifecycle(operation: Operation, now) -> str:
    """What the published deprecation covering the operation (the one behind its Deprecation headers)
    says of it now, or "" when none does."""
    from api.deprecations import rule_for

    rule = rule_for(operation.path)
    if rule is None or not rule.announced(now):
        return ""
    if rule.enforced(now):
        return "retired"
    return f"deprecated, sunset {rule.sunset_at:%Y-%m-%d}"


def _version_links(row: EndpointRow) -> SafeString:
    now = timezone.now()
    return format_html_join(
        " · ",
        '<a href="{}" title="{} {} in the {} reference">{}</a>{}',
        (
            (
                op.reference_url,
                op.method,
                op.path,
                op.version,
                op.version,
                format_html(' <span class="muted">({})</span>', state) if (state := _lifecycle(op, now)) else "",
            )
            for op in row.versions
        ),
    )


def _scopes_cell(row: EndpointRow) -> SafeString:
    scopes = format_html_join(", ", "<code>{}</code>", ((scope,) for scope in row.scopes)) or format_html(
        "{}", "any valid token"
    )
    if row.partner_types:
        scopes = format_html(
            '{}<br><span class="muted">{}</span>', scopes, "for " + ", ".join(row.partner_types) + " organizations"
        )
    return scopes


def _endpoint_table(rows: list[EndpointRow]) -> SafeString:
    body = format_html_join(
        "\n",
        "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((row.method, row.path, row.summary, _scopes_cell(row), _version_links(row)) for row in rows),
    )
    return format_html(
        '<div class="table-wrap"><table class="table table-compact">\n'
        '<thead><tr><th scope="col">Method</th><th scope="col">Path</th><th scope="col">What it does</th>'
        '<th scope="col">Scope</th><th scope="col">Reference</th></tr></thead>\n'
        "<tbody>\n{}\n</tbody>\n</table></div>",
        body,
    )


@block("workflow-endpoints")
def workflow_endpoints() -> SafeString:
    """Every operation of the published versions, by tag, with its scope and its reference links."""
    sections = format_html_join(
        "\n",
        '<section class="generated-group" aria-labelledby="endpoints-{}">\n<h3 id="endpoints-{}"><code>{}</code></h3>\n'
        "{}\n</section>",
        ((tag, tag, tag, _endpoint_table(endpoint_rows(tag))) for tag in published_tags()),
    )
    return format_html(
        '<div class="generated" data-block="workflow-endpoints">\n{}\n<p class="generated-note">{}</p>\n</div>',
        sections,
        "Built from the published OpenAPI documents ("
        + ", ".join(f"openapi/{v}.json" for v in openapi.VERSIONS)
        + ") and the scopes each endpoint's view requires, when this page was loaded. The path shown is the "
        "newest version's; Reference links to the operation in each version that has it.",
    )


def _tag_block(tag: str):
    def operations_of_tag() -> SafeString:
        rows = endpoint_rows(tag)
        references = format_html_join(
            " · ",
            '<a href="{}">{} reference</a>',
            ((reference_url(version, tag), version) for version in openapi.VERSIONS),
        )
        return format_html(
            '<div class="generated" data-block="api-reference-{}">\n{}\n<p class="generated-note">{}{}. {}</p>\n</div>',
            tag,
            _endpoint_table(rows),
            "The whole tag in the API reference: ",
            references,
            "Built from the published OpenAPI documents when this page was loaded.",
        )

    operations_of_tag.__name__ = f"api_reference_{tag.replace('-', '_')}"
    operations_of_tag.__doc__ = f"The operations tagged {tag!r}, each with its links into the API reference."
    return operations_of_tag


def _register_tag_blocks() -> None:
    for tag in published_tags():
        block(f"api-reference-{tag}")(_tag_block(tag))


# --- The sandbox's own data --------------------------------------------------------------------------

SEED_HINT = (
    "The sandbox holds no synthetic data yet. Seed it with `python manage.py seed_sandbox` (`make run` does), "
    "then reload this page."
)


def _sample_rows():
    """(title, how to ask for it, row) of each sample, chosen by stable ids and orderings so the same
    seed always shows the same resources: the demo patient, its latest lab result and coverage, its
    upcoming booked visit, and the first free slot."""
    from api import synthetic
    from api.models import Appointment, Coverage, Environment, Observation, Patient, Slot

    sandbox = Environment.SANDBOX
    patient_id = synthetic.DEMO_PATIENT_ID
    samples = []
    patient = Patient.objects.filter(environment=sandbox, id=patient_id).first()
    if patient is None:
        return samples
    samples.append(("The demo patient", f"GET /fhir/r4/Patient/{patient.id}", patient))
    lab = (
        Observation.objects.filter(environment=sandbox, patient_id=patient_id, category="laboratory")
        .order_by("-effective", "id")
        .first()
    )
    if lab:
        samples.append(
            (
                "Their latest lab result",
                f"GET /fhir/r4/Observation?patient={patient_id}&category=laboratory&_sort=-date&_count=1",
                lab,
            )
        )
    coverage = Coverage.objects.filter(environment=sandbox, patient_id=patient_id).order_by("id").first()
    if coverage:
        samples.append(("Their coverage", f"GET /fhir/r4/Coverage?patient={patient_id}", coverage))
    visit = (
        Appointment.objects.filter(environment=sandbox, patient_id=patient_id, status="booked")
        .order_by("start", "id")
        .first()
    )
    if visit:
        samples.append(("Their booked visit", f"GET /fhir/r4/Appointment/{visit.id}", visit))
    slot = Slot.objects.filter(environment=sandbox, status="free").order_by("start", "id").first()
    if slot:
        samples.append(("A free slot to book a visit in", "GET /fhir/r4/Slot?status=free&_sort=start&_count=1", slot))
    return samples


def _seed_hint(name: str) -> SafeString:
    return format_html('<div class="generated" data-block="{}"><p class="muted">{}</p></div>', name, SEED_HINT)


@block("sandbox-samples")
def sandbox_samples() -> SafeString:
    """Resources of the seeded sandbox, each as the FHIR API serves it."""
    from api.fhir.render import resource

    samples = _sample_rows()
    if not samples:
        return _seed_hint("sandbox-samples")
    sections = format_html_join(
        "\n",
        '<section class="generated-group" aria-labelledby="sample-{}">\n'
        '<h3 id="sample-{}">{} <span class="muted"><code>{}/{}</code></span></h3>\n'
        "<p><code>{}</code></p>\n<details{}><summary>{}</summary>\n{}\n</details>\n</section>",
        (
            (
                row.resource_type.lower(),
                row.resource_type.lower(),
                title,
                row.resource_type,
                row.id,
                request,
                " open" if number == 0 else "",
                f"The {row.resource_type} as JSON",
                _json(resource(row)),
            )
            for number, (title, request, row) in enumerate(samples)
        ),
    )
    return format_html(
        '<div class="generated" data-block="sandbox-samples">\n{}\n<p class="generated-note">{}</p>\n</div>',
        sections,
        "Read from this sandbox's data when this page was loaded, and rendered by the FHIR API's own code: "
        "what a read answers, less the headers. Ids, dates and values are the seed's; a sandbox seeded on "
        "another day has other dates.",
    )


@block("sandbox-inventory")
def sandbox_inventory() -> SafeString:
    """What the sandbox holds, by resource type, and the patients a negative test can use."""
    from api.models import Coverage, Environment, Patient
    from api.seed import synthetic_counts

    counts = {resource_type: n for resource_type, n in synthetic_counts().items() if n}
    if not counts.get("Patient"):
        return _seed_hint("sandbox-inventory")
    sandbox = Environment.SANDBOX
    covered = Coverage.objects.filter(environment=sandbox).values("patient_id")
    uncovered = list(
        Patient.objects.filter(environment=sandbox, synthetic=True)
        .exclude(id__in=covered)
        .order_by("id")
        .values_list("id", flat=True)[:10]
    )
    rows = format_html_join(
        "\n", '<tr><th scope="row">{}</th><td class="num">{}</td></tr>', ((rt, f"{n:,}") for rt, n in counts.items())
    )
    uncovered_text = (
        format_html_join(", ", "<code>Patient/{}</code>", ((pid,) for pid in uncovered))
        if uncovered
        else format_html("{}", "none in this sandbox")
    )
    return format_html(
        '<div class="generated" data-block="sandbox-inventory"><div class="table-wrap">'
        '<table class="table table-compact">\n<thead><tr><th scope="col">Resource type</th>'
        '<th scope="col" class="num">Synthetic resources</th></tr></thead>\n<tbody>\n{}\n</tbody>\n</table></div>\n'
        "<p>{} {}</p>\n"
        '<p class="generated-note">{}</p>\n</div>',
        rows,
        "Patients without any coverage (an eligibility check for them answers 404 not_found):",
        uncovered_text,
        "Counted in this sandbox's data when this page was loaded.",
    )


_register_tag_blocks()
