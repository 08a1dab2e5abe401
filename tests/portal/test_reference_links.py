"""Every published operation is documented on a docs page that links to its version's API reference, and
every link from the docs into the reference (or a schema, or the FHIR CapabilityStatement) works.

"Mentioned" is read from a page's Markdown as written (the generated tables do not count: a table of
everything mentions everything): the operation's path under some version, parameters named as the
page likes (``/api/v1/visits/{id}/cancel`` mentions ``/api/v2/visits/{visit_id}/cancel``), on a page that
also names the operation's own version (``/api/v2/``: "the same endpoints exist under /api/v2/"). The
link is read from the page as served, generated blocks included.
"""

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from django.conf import settings

from api import openapi
from portal import docs
from portal.docs_blocks import unversioned

pytestmark = pytest.mark.django_db

API_PATH_RE = re.compile(r"/api/v[0-9]+/[A-Za-z0-9_{}./-]*")
REFERENCE_HREF_RE = re.compile(r'href="(/api/(?:reference|schema)/[^"]*|/fhir/r4/metadata[^"]*)"')
LISTING_PAGES = {"workflow-apis"}  # its table of every endpoint is generated: it documents none of them


def committed_documents() -> dict[str, dict]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((Path(settings.BASE_DIR) / "openapi").glob("*.json"))
    }


def operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def sources() -> dict[str, str]:
    """Each page's Markdown, without its front matter."""
    return {
        path.stem: docs.split_front_matter(path.read_text(encoding="utf-8"))[1] for path in docs.docs_dir().glob("*.md")
    }


def mentioned_paths(source: str) -> set[str]:
    return {unversioned(found.rstrip(".")) for found in API_PATH_RE.findall(source)}


@pytest.fixture(scope="module")
def rendered(django_db_blocker):
    with django_db_blocker.unblock():
        return {entry.slug: str(docs.page(entry.slug).html()) for entry in docs.entries()}


def test_every_committed_document_is_a_published_version():
    assert sorted(committed_documents()) == sorted(openapi.VERSIONS)


def test_every_operation_is_documented_on_a_page_that_links_to_its_reference(rendered):
    pages = {slug: source for slug, source in sources().items() if slug not in LISTING_PAGES}
    mentions = {slug: mentioned_paths(source) for slug, source in pages.items()}
    undocumented, unlinked = [], []
    for version, document in committed_documents().items():
        reference = f'href="/api/reference/{version}/'
        for method, path, _operation in operations(document):
            documenting = [
                slug for slug in pages if unversioned(path) in mentions[slug] and f"/api/{version}/" in pages[slug]
            ]
            if not documenting:
                undocumented.append(f"{method} {path}")
            elif not any(reference in rendered[slug] for slug in documenting):
                unlinked.append(f"{method} {path} (documented on {', '.join(documenting)})")
    assert not undocumented, f"operations no docs page mentions: {undocumented}"
    assert not unlinked, f"operations whose pages do not link to their version's reference: {unlinked}"


def test_every_tag_is_deep_linked_from_an_endpoint_page(rendered):
    """Not only the listing: the page about an API links into the reference where that API is."""
    missing = []
    for version, document in committed_documents().items():
        tags = {(op.get("tags") or [""])[0] for _m, _p, op in operations(document)}
        for tag in sorted(tags):
            link = f'href="/api/reference/{version}/#/{tag}'
            if not any(link in html for slug, html in rendered.items() if slug not in LISTING_PAGES):
                missing.append(f"{version} #{tag}")
    assert not missing


def test_every_reference_link_in_the_docs_answers_and_names_a_real_operation(client, rendered):
    documents = committed_documents()
    links = sorted({link for html in rendered.values() for link in REFERENCE_HREF_RE.findall(html)})
    assert any(link.startswith("/api/reference/v1/") for link in links)
    assert any(link.startswith("/api/reference/v2/") for link in links)
    answered = {}
    for link in links:
        parts = urlsplit(link.replace("&amp;", "&"))
        if parts.path not in answered:
            answered[parts.path] = client.get(parts.path).status_code
        assert answered[parts.path] == 200, f"{link} answers {answered[parts.path]}"
        if parts.fragment:
            # Swagger UI's deep links: #/<tag> or #/<tag>/<operationId>.
            version = parts.path.split("/")[3]
            tag, _, operation_id = unquote(parts.fragment).removeprefix("/").partition("/")
            known = {((op.get("tags") or [""])[0], op["operationId"]) for _m, _p, op in operations(documents[version])}
            assert tag in {t for t, _o in known}, f"{link}: no tag {tag!r} in {version}"
            assert not operation_id or (tag, operation_id) in known, f"{link}: no operation {operation_id!r}"


def test_the_reference_is_swagger_ui_with_deep_linking(client):
    """The fragments above are Swagger UI's deep links, which work only with deepLinking on."""
    assert settings.SPECTACULAR_SETTINGS["SWAGGER_UI_SETTINGS"]["deepLinking"] is True
    page = client.get("/api/reference/v2/").content.decode()
    assert "swagger-ui" in page.lower()
    assert "/api/schema/v2/" in page
