"""The published contract: openapi/<version>.json is the code's document, and a change to it that would
break clients is caught by the OpenAPI diff tool (Optic), run through ``manage.py openapi_check``."""

import copy
import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from api import contract
from api.openapi import CONTRACT_DIR, VERSIONS, committed_path, render, schema_for

needs_tool = pytest.mark.skipif(
    not contract.tool_available(),
    reason=f"the OpenAPI diff tool is not installed (Node.js + {contract.OPTIC}): {contract.INSTALL_HINT}",
)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_committed_document_is_the_code_s(version):
    """The real check: a version's committed document changes only with `manage.py openapi_export`."""
    committed = committed_path(version).read_text()
    assert committed == render(schema_for(version, fresh=True)), (
        f"openapi/{version}.json is not the code's document: run `manage.py openapi_check` to see whether the "
        "change breaks clients, and `manage.py openapi_export` to commit an additive one."
    )


def test_the_committed_form_is_stable():
    text = committed_path("v1").read_text()
    assert text.endswith("}\n") and text == render(json.loads(text))


def test_openapi_check_passes_on_the_committed_documents():
    out = StringIO()
    call_command("openapi_check", stdout=out)
    assert "Contract check passed for v1, v2" in out.getvalue()


# --- the checker, on doctored copies of the committed documents -------------------------------------------
#
# The committed copy is the "before" and the code's document the "after". To pretend the code changed,
# the tests change the committed copy the other way: a response field the code no longer sends is one
# added to the copy; a request field the code newly requires is one taken out of the copy.
#
# Optic takes about 9 s on a whole document (2 cores), so one test runs it on the real documents and the
# others on each version's booking operation alone (about 1.5 s), through the same commands.

BOOKING = "/api/{version}/visits"


def one_operation(document: dict, version: str) -> dict:
    small = copy.deepcopy(document)
    path = BOOKING.format(version=version)
    small["paths"] = {path: {"post": document["paths"][path]["post"]}}
    return small


@pytest.fixture
def small_contract(tmp_path, monkeypatch) -> Path:
    """Each version's code document cut to its booking operation, committed as such in ``tmp_path``."""
    documents = {version: one_operation(schema_for(version), version) for version in VERSIONS}

    def code_document(version, *, fresh=False):
        return copy.deepcopy(documents[version])

    monkeypatch.setattr("api.contract.schema_for", code_document)
    monkeypatch.setattr("api.management.commands.openapi_export.schema_for", code_document)
    for version, document in documents.items():
        (tmp_path / f"{version}.json").write_text(render(document))
    return tmp_path


def doctor(directory: Path, version: str, change) -> Path:
    path = directory / f"{version}.json"
    document = json.loads(path.read_text())
    change(document["components"]["schemas"])
    path.write_text(render(document))
    return path


def run_check(directory: Path) -> tuple[str, str]:
    out = StringIO()
    try:
        call_command("openapi_check", "--dir", str(directory), stdout=out)
    except CommandError as failure:
        return out.getvalue(), str(failure)
    return out.getvalue(), ""


def _response_field_removed_by_the_code(schemas):
    visit = schemas["VisitV2"]
    visit["properties"]["location"] = {"type": "string", "description": "Where the visit takes place."}
    visit["required"].append("location")


def _request_field_newly_required_by_the_code(schemas):
    # The code requires "reason" when booking; the copy says it did not exist before.
    request = schemas["VisitCreateRequest"]
    del request["properties"]["reason"]
    request["required"].remove("reason")


@needs_tool
def test_a_removed_response_field_is_breaking_on_the_real_documents(tmp_path):
    for version in VERSIONS:
        shutil.copy(CONTRACT_DIR / f"{version}.json", tmp_path / f"{version}.json")
    doctor(tmp_path, "v2", _response_field_removed_by_the_code)
    out, failure = run_check(tmp_path)
    assert "v2 breaking" in failure
    assert "BREAKING" in out
    assert "cannot remove response property 'location'" in out
    assert "GET /api/v2/visits/{visit_id}" in out and "POST /api/v2/visits/{visit_id}/cancel" in out
    assert "v1: the code's document matches" in out
    assert "make it in a new version" in out


@needs_tool
def test_a_newly_required_request_field_is_breaking(small_contract):
    doctor(small_contract, "v1", _request_field_newly_required_by_the_code)
    out, failure = run_check(small_contract)
    assert "v1 breaking" in failure
    assert "cannot add a required request property 'reason'" in out
    assert "POST /api/v1/visits" in out


@needs_tool
def test_added_optional_fields_are_not_breaking(tmp_path):
    code = one_operation(schema_for("v2"), "v2")
    before, after = copy.deepcopy(code), copy.deepcopy(code)
    # The 400 problem gains its optional "errors" list; booking accepts a new optional "channel".
    del before["components"]["schemas"]["Problem"]["properties"]["errors"]
    after["components"]["schemas"]["VisitCreateRequest"]["properties"]["channel"] = {"type": "string"}
    (tmp_path / "before.json").write_text(render(before))
    (tmp_path / "after.json").write_text(render(after))
    verdict = contract.breaking_changes(tmp_path / "before.json", tmp_path / "after.json")
    assert not verdict.breaking, verdict.report
    assert "/schema/properties/channel: added" in verdict.report
    assert "/schema/properties/errors: added" in verdict.report


@needs_tool
def test_an_additive_change_fails_until_it_is_exported(small_contract):
    doctor(small_contract, "v2", lambda schemas: schemas["Problem"]["properties"].pop("errors"))
    out, failure = run_check(small_contract)
    assert "v2 additive" in failure and "breaking" not in failure
    assert "nothing breaks" in out and "~ components.schemas.Problem" in out
    assert "manage.py openapi_export" in out
    call_command("openapi_export", "--dir", str(small_contract), stdout=StringIO())  # allowed: nothing breaks
    assert run_check(small_contract) == (run_check(small_contract)[0], "")


@needs_tool
def test_export_refuses_to_publish_a_breaking_change(small_contract):
    path = doctor(small_contract, "v2", _request_field_newly_required_by_the_code)
    before = path.read_text()
    with pytest.raises(CommandError, match="breaks clients of published version v2"):
        call_command("openapi_export", "--dir", str(small_contract), stdout=StringIO())
    assert path.read_text() == before
    call_command("openapi_export", "--allow-breaking", "--dir", str(small_contract), stdout=StringIO())
    assert path.read_text() != before


def test_export_check_summarizes_what_differs(small_contract):
    doctor(small_contract, "v2", _response_field_removed_by_the_code)
    out = StringIO()
    with pytest.raises(CommandError, match="not the code's"):
        call_command("openapi_export", "--check", "--dir", str(small_contract), stdout=out)
    assert "~ components.schemas.VisitV2" in out.getvalue()
    assert "~ operation POST /api/v2/visits (through schemas.VisitV2)" in out.getvalue()
    assert "v1: " in out.getvalue() and "is up to date" in out.getvalue()


def test_a_missing_document_fails_with_the_command_to_run(small_contract):
    (small_contract / "v2.json").unlink()
    out, failure = run_check(small_contract)
    assert "v2 missing" in failure
    assert "manage.py openapi_export" in out


def test_summary_names_operations_and_components():
    before = json.loads(committed_path("v2").read_text())
    after = copy.deepcopy(before)
    del after["paths"]["/api/v2/visits/{visit_id}/cancel"]
    after["paths"]["/api/v2/visits"]["get"]["summary"] = "Changed"
    after["components"]["schemas"]["New"] = {"type": "object"}
    after["components"]["schemas"]["VisitPeriod"]["description"] = "Changed"
    assert contract.summarize(before, after) == [
        "- operation POST /api/v2/visits/{visit_id}/cancel",
        "~ operation GET /api/v2/visits (through schemas.VisitPeriod)",
        "~ operation GET /api/v2/visits/{visit_id} (through schemas.VisitPeriod)",
        "~ operation POST /api/v2/visits (through schemas.VisitPeriod)",
        "+ components.schemas.New",
        "~ components.schemas.VisitPeriod",
    ]


@needs_tool
def test_base_holds_the_code_to_another_revision_s_documents(small_contract, monkeypatch, tmp_path_factory):
    """A breaking change committed together with its regenerated document passes the plain check, but not
    ``--base <the main branch>``."""
    elsewhere = tmp_path_factory.mktemp("at-base")
    for version in VERSIONS:
        shutil.copy(small_contract / f"{version}.json", elsewhere / f"{version}.json")
    doctor(elsewhere, "v2", _response_field_removed_by_the_code)
    shown = {}

    def at_revision(ref, version, scratch):
        shown[version] = ref
        return elsewhere / f"{version}.json"

    monkeypatch.setattr("api.management.commands.openapi_check._at_revision", at_revision)
    assert run_check(small_contract)[1] == ""
    out = StringIO()
    with pytest.raises(CommandError, match="v2 breaking"):
        call_command("openapi_check", "--dir", str(small_contract), "--base", "origin/main", stdout=out)
    assert shown == {"v1": "origin/main", "v2": "origin/main"}
    assert "breaks clients of v2 (the copy at origin/main)" in out.getvalue()
