"""The docs search (/docs/search/, portal.search): what a developer typing in the search box gets.

Runs on whichever database the settings choose: PostgreSQL's full-text search with ``DATABASE_URL``,
the plain fallback on SQLite; every test here holds for both."""

import os
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from portal import search
from portal.models import DocSection, PortalEvent

pytestmark = pytest.mark.django_db

WEBHOOKS = """---
title: Receiving callbacks
summary: How the platform calls you.
---

# Receiving callbacks

The platform calls your endpoint when something happens.

## Delivery

Each delivery is retried with backoff. Verify the signature on every delivery before you trust it:
the signature header holds an HMAC, and a delivery without a valid signature must be dropped. Check
the signature in constant time.

## Signatures

How to compute the HMAC over the body and compare it.

## Timeouts

Answer within ten seconds with a 2xx status, or the attempt counts as failed.
"""

LIMITS = """---
title: Throttling
summary: How quotas work.
---

# Throttling

Every response carries quota headers.

## Refusals

A refused request is answered 429 with a Retry-After header: wait that many seconds.

## Burst quotas

Short bursts are allowed up to the burst quota; the sustained rate is the minute quota.

## Code sample

```python
if response.status_code == 429:
    time.sleep(int(response.headers["Retry-After"]))
```

Never paste `<script>alert("x")</script>` into a header value.
"""


@pytest.fixture(autouse=True)
def _fresh_index():
    # The index lives in the test's database, which each test rolls back; this process's memo of
    # "already indexed" must not outlive it.
    search.forget()
    yield
    search.forget()


@pytest.fixture
def docs_dir(tmp_path, settings):
    settings.DOCS_DIR = tmp_path
    write(tmp_path, "callbacks", WEBHOOKS)
    write(tmp_path, "throttling", LIMITS)
    return tmp_path


def write(directory: Path, slug: str, text: str) -> Path:
    path = directory / f"{slug}.md"
    path.write_text(text, encoding="utf-8")
    return path


def results(client, query: str, *, errors: bool = False) -> list[tuple[str, str]]:
    """(link, title) of each result on the search page, in order; without ``errors``, only those of
    this test's pages (every error code's page is always indexed too)."""
    response = client.get("/docs/search/", {"q": query})
    assert response.status_code == 200
    listed = response.text.split('<ol class="search-results"', 1)
    if len(listed) == 1:
        return []
    found = re.findall(r'<h2 class="search-result-title"><a href="([^"]+)">([^<]+)</a>', listed[1])
    return [(link, title) for link, title in found if errors or not link.startswith("/docs/errors/")]


def links(client, query: str, **kwargs) -> list[str]:
    return [link for link, _ in results(client, query, **kwargs)]


def test_a_search_finds_the_section_with_the_word_and_links_to_its_anchor(client, docs_dir):
    found = results(client, "backoff")
    assert found == [("/docs/callbacks/#delivery", "Delivery")]
    response = client.get("/docs/search/", {"q": "backoff"})
    assert "<mark>backoff</mark>" in response.text
    assert "in Receiving callbacks" in response.text
    assert "<strong>backoff</strong>" in response.text


def test_a_heading_match_comes_before_mentions_in_text(client, docs_dir):
    # "Delivery" says "signature" four times; the section headed "Signatures" says it in its heading.
    found = links(client, "signature")
    assert found[0] == "/docs/callbacks/#signatures"
    assert "/docs/callbacks/#delivery" in found


def test_every_word_must_be_in_the_section(client, docs_dir):
    assert links(client, "Retry-After seconds") == ["/docs/throttling/#refusals"]
    assert links(client, "burst quota") == ["/docs/throttling/#burst-quotas"]
    # Both words exist in the docs, never in one section.
    assert links(client, "backoff burst") == []


def test_the_page_top_is_a_result_of_its_own(client, docs_dir):
    assert links(client, "something happens") == ["/docs/callbacks/"]


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced quote',
        "'; DROP TABLE portal_docsection; --",
        "a & b | !c <-> (d:*",
        "-",
        "\x00\x01 null bytes",
        "%_\\",
        "ünïcödé 日本語 🚀",
        "<script>alert(1)</script>",
        "or",
        "signature " * 100,
    ],
)
def test_odd_queries_never_fail(client, docs_dir, query):
    response = client.get("/docs/search/", {"q": query})
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text


def test_a_long_query_is_cut_and_says_so(client, docs_dir):
    response = client.get("/docs/search/", {"q": "signature " * 50})
    assert response.status_code == 200
    assert "Only the first 200 characters were searched." in response.text
    event = PortalEvent.objects.get(kind=PortalEvent.Kind.SEARCH)
    assert len(event.query) <= search.MAX_QUERY_LENGTH


def test_snippets_are_escaped_text_with_only_the_words_marked(client, docs_dir):
    response = client.get("/docs/search/", {"q": "paste"})
    assert '<a href="/docs/throttling/#code-sample">' in response.text
    snippet = response.text.split('class="search-result-snippet">', 1)[1].split("</p>", 1)[0]
    assert "<mark>paste</mark>" in snippet
    assert set(re.findall(r"<(/?\w+)", snippet)) == {"mark", "/mark"}


def test_words_inside_code_are_found(client, docs_dir):
    # time.sleep(...) and response.headers[...]: PostgreSQL alone would read each as one word.
    assert links(client, "sleep") == ["/docs/throttling/#code-sample"]


def test_nothing_found_says_so(client, docs_dir):
    response = client.get("/docs/search/", {"q": "xylophone"})
    assert "Nothing found for “<strong>xylophone</strong>”." in response.text
    assert 'class="search-results"' not in response.text


def test_an_empty_query_shows_the_form_only_and_counts_nothing(client, docs_dir):
    response = client.get("/docs/search/", {"q": "   "})
    assert response.status_code == 200
    assert "Search the documentation" in response.text
    assert 'role="search"' in response.text
    assert "Nothing found" not in response.text
    assert not PortalEvent.objects.exists()


def test_results_follow_the_docs_when_a_page_changes_or_goes(client, docs_dir):
    assert links(client, "backoff") == ["/docs/callbacks/#delivery"]
    path = write(docs_dir, "callbacks", WEBHOOKS.replace("backoff", "jitter"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a clock tick later
    assert links(client, "backoff") == []
    assert links(client, "jitter") == ["/docs/callbacks/#delivery"]

    (docs_dir / "throttling.md").unlink()
    assert links(client, "Retry-After") == []
    assert not DocSection.objects.filter(slug="throttling").exists()

    write(docs_dir, "new-page", "---\ntitle: Brand new\n---\n# Brand new\n\n## Fresh section\n\nPineapple.\n")
    assert links(client, "pineapple") == ["/docs/new-page/#fresh-section"]


def test_an_unchanged_page_is_not_rebuilt(docs_dir):
    first = search.doc_sections_rebuild()
    assert {"callbacks", "throttling"} <= set(first.rebuilt)
    ids = list(DocSection.objects.filter(slug="callbacks").values_list("pk", flat=True))
    second = search.doc_sections_rebuild()
    assert second.rebuilt == [] and second.deleted == []
    assert list(DocSection.objects.filter(slug="callbacks").values_list("pk", flat=True)) == ids


def test_error_code_pages_are_searchable(client, docs_dir):
    found = results(client, "quota_exceeded", errors=True)
    assert found[0] == ("/docs/errors/quota_exceeded/", "Error quota_exceeded")
    # A renamed code finds the page it became.
    assert "/docs/errors/quota_exceeded/" in links(client, "rate_limited", errors=True)


def test_the_search_box_is_on_every_docs_page(client, docs_dir):
    for path in ("/docs/", "/docs/callbacks/", "/docs/errors/quota_exceeded/", "/docs/search/?q=backoff"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert re.search(r'<form class="docs-search" role="search" method="get" action="/docs/search/">', response.text)
        assert '<label for="docs-search-q"' in response.text
    # On the results page, the box holds what was searched.
    assert 'value="backoff"' in client.get("/docs/search/", {"q": "backoff"}).text


def test_the_real_docs_are_indexed_by_the_command(settings):
    out = StringIO()
    call_command("index_docs", stdout=out)
    assert "re-indexed" in out.getvalue()
    slugs = set(DocSection.objects.values_list("slug", flat=True))
    assert {"getting-started", "rate-limits", "errors/quota_exceeded"} <= slugs
    # Generated tables are indexed as a visitor sees them: the policy names of the rate-limit tables.
    assert DocSection.objects.filter(slug="rate-limits", text__contains="org-writes-day").exists()
    out = StringIO()
    call_command("index_docs", stdout=out)
    assert "0 re-indexed" in out.getvalue()


def test_the_real_docs_find_pkce_on_the_authentication_page(client):
    assert any(link.startswith("/docs/authentication/") for link in links(client, "PKCE"))
