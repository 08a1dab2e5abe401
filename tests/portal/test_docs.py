import os
import re
from html import unescape
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings

from api import ratelimit
from partners import token_limits
from partners.models import Tier
from partners.tiers import ENDPOINT_GROUPS, QUOTA_WINDOWS
from portal import docs
from tests.portal.conftest import login_as

REPO_DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = """---
title: "A test page: with a colon"
summary: What the test page is for.
---

# A test page

See [Tiers](tiers.md), [the codes](errors.md#codes), [here](#a-section) and [out](https://example.org/x).

<script>alert("page")</script>
<p onclick="alert('click')" style="color: red">Clicked</p>
<a href="javascript:alert('js')">js link</a>
<img src="x" onerror="alert('img')">
<iframe src="https://evil.example/"></iframe>

## A section

| Group | Count |
| :-- | --: |
| a | 1 |

```python
def f():
    return "<b>not bold</b>"
```

!!! warning "Careful"
    Admonition *body*.

??? note "More"
    Hidden details.

## Another section
"""


@pytest.fixture
def docs_dir(tmp_path, settings):
    settings.DOCS_DIR = tmp_path
    return tmp_path


def write(directory: Path, slug: str, text: str) -> Path:
    path = directory / f"{slug}.md"
    path.write_text(text, encoding="utf-8")
    return path


def row(html: str, policy: str) -> list[str]:
    """The cells of a generated table's row for ``policy`` (its id), as text."""
    match = re.search(rf'<tr id="{re.escape(policy)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {policy}"
    return [unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", match[1])]


# --- Rendering ------------------------------------------------------------------------------------


def test_a_page_renders_with_its_title_and_sanitized_html(client, docs_dir):
    write(docs_dir, "test-page", PAGE)
    response = client.get("/docs/test-page/")
    assert response.status_code == 200
    body = response.text
    assert "<title>A test page: with a colon · Docs · Healthcare Marketplace</title>" in body
    article = body[body.index('<article class="card docs-prose">') : body.index("</article>")]
    for forbidden in ("<script", "alert(", "onclick", "onerror", "javascript:", "style=", "<iframe", "<img"):
        assert forbidden not in article, forbidden
    assert "Clicked" in article
    assert '<h2 id="a-section">A section<a class="headerlink" href="#a-section"' in article
    assert '<th align="left">Group</th>' in article and '<td align="right">1</td>' in article
    assert '<div class="highlight"><pre><span></span><code><span class="k">def</span>' in article
    assert "&lt;b&gt;not bold&lt;/b&gt;" in article
    assert '<div class="admonition warning">' in article and '<p class="admonition-title">Careful</p>' in article
    assert '<details class="note">' in article and "<summary>More</summary>" in article
    # "On this page" lists the h2s.
    assert '<li><a href="#a-section">A section</a></li><li><a href="#another-section">Another section</a></li>' in body


def test_links_between_pages_are_rewritten_to_their_docs_addresses(client, docs_dir):
    write(docs_dir, "test-page", PAGE)
    body = client.get("/docs/test-page/").text
    assert '<a href="/docs/tiers/">Tiers</a>' in body
    assert '<a href="/docs/errors/#codes">the codes</a>' in body
    assert '<a href="#a-section">here</a>' in body
    assert '<a href="https://example.org/x">out</a>' in body
    assert 'href="tiers.md"' not in body


def test_front_matter(docs_dir):
    meta, rest = docs.split_front_matter("---\ntitle: 'Quoted'\nsummary: a: b: c\n# comment\n---\n# Body\n")
    assert meta == {"title": "Quoted", "summary": "a: b: c"}
    assert rest == "# Body\n"
    assert docs.split_front_matter("# No front matter\n") == ({}, "# No front matter\n")
    # Without a title in the front matter, the first h1 is the title.
    write(docs_dir, "untitled", "# From the heading\n\nText.\n")
    assert docs.page("untitled").title == "From the heading"


def test_an_unknown_slug_is_a_404_that_lists_the_pages(client, docs_dir):
    write(docs_dir, "getting-started", "---\ntitle: Getting started\nsummary: First steps.\n---\n# Hi\n")
    response = client.get("/docs/no-such-page/")
    assert response.status_code == 404
    assert "There is no documentation page “no-such-page”" in response.text
    assert '<a href="/docs/getting-started/">Getting started</a>' in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/docs/..%2Fsettings/",
        "/docs/..%2F..%2Fmarketplace%2Fsettings/",
        "/docs/%2E%2E/",
        "/docs/Tiers/",
        "/docs/tiers.md/",
    ],
)
def test_a_slug_is_a_file_name_and_nothing_else(client, docs_dir, path):
    (docs_dir.parent / "settings.md").write_text("---\ntitle: Secret\n---\nSECRET_KEY\n", encoding="utf-8")
    write(docs_dir, "tiers", "# Tiers\n")
    response = client.get(path)
    assert response.status_code == 404
    assert "SECRET_KEY" not in response.text


@pytest.mark.parametrize("slug", ["../settings", "..", "", "a/b", "Tiers", "tiers.md", "tiers\x00", ".hidden"])
def test_the_service_refuses_anything_but_a_slug(docs_dir, slug):
    (docs_dir.parent / "settings.md").write_text("# Secret\n", encoding="utf-8")
    write(docs_dir, "tiers", "# Tiers\n")
    assert docs.page(slug) is None


def test_the_index_lists_every_page_in_reading_order(client, docs_dir):
    write(docs_dir, "zeta", "---\ntitle: Zeta notes\nsummary: Not in any section.\n---\n# Zeta\n")
    write(docs_dir, "errors", "---\ntitle: Errors\nsummary: One error shape.\n---\n# Errors\n")
    write(docs_dir, "getting-started", "---\ntitle: Getting started\nsummary: First steps.\n---\n# Hi\n")
    (docs_dir / "Not A Page.md").write_text("# no\n", encoding="utf-8")
    response = client.get("/docs/")
    assert response.status_code == 200
    body = response.text
    main = body[body.index('<div class="docs-main">') : body.index('<nav class="docs-sidebar"')]
    titles = re.findall(r'<h3 class="card-title"><a href="/docs/([a-z0-9-]+)/">', main)
    assert titles == ["getting-started", "errors", "zeta"]
    assert "First steps." in main and "One error shape." in main and "Not in any section." in main
    assert "Not A Page" not in body


def test_a_marker_in_code_is_text_and_an_unknown_block_breaks_the_page(client, docs_dir):
    write(docs_dir, "shown", "# Shown\n\n```\n<!-- generated: rate-limit-policies -->\n```\n")
    assert "&lt;!-- generated: rate-limit-policies --&gt;" in docs.page("shown").html()
    assert docs.page("shown").blocks == ()
    write(docs_dir, "broken", "# Broken\n\n<!-- generated: no-such-block -->\n")
    with pytest.raises(docs.BrokenPage, match="no-such-block"):
        docs.page("broken")
    write(docs_dir, "hidden", "# Hidden\n\nThe numbers: <!-- generated: rate-limit-policies --> here.\n")
    with pytest.raises(docs.BrokenPage, match="a line of its own"):
        docs.page("hidden")
    # The others, and the navigation, do not break with it.
    assert "/docs/broken/" in client.get("/docs/shown/").text


def test_a_page_is_rendered_again_when_its_file_changes(docs_dir):
    path = write(docs_dir, "page", "---\ntitle: First\n---\n# First\n")
    first = docs.page("page")
    assert docs.page("page") is first  # cached while the file is unchanged
    path.write_text("---\ntitle: Second\n---\n# Second\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert docs.page("page").title == "Second"


def test_docs_pages_are_public_and_briefly_cacheable(client, docs_dir, db):
    write(docs_dir, "page", "# Page\n")
    anonymous = client.get("/docs/page/")
    assert "public" in anonymous["Cache-Control"] and "max-age=60" in anonymous["Cache-Control"]
    login_as(client, "owner")
    signed_in = client.get("/docs/page/")
    assert signed_in.status_code == 200
    # The navigation then names the user: never for a shared cache.
    assert "private" in signed_in["Cache-Control"] and "public" not in signed_in["Cache-Control"]
    assert re.search(r'<a href="/docs/" aria-current="page">Docs</a>', signed_in.text)


def test_the_pygments_stylesheet_matches_the_installed_pygments():
    css = (Path(django_settings.BASE_DIR) / "static" / "css" / "pygments.css").read_text(encoding="utf-8")
    assert docs.pygments_css() in css, "regenerate static/css/pygments.css (see its header)"


# --- The pages in the repository ------------------------------------------------------------------


@pytest.mark.parametrize("slug", sorted(path.stem for path in REPO_DOCS.glob("*.md")))
def test_every_page_in_the_repository_renders(client, db, slug):
    response = client.get(f"/docs/{slug}/")
    assert response.status_code == 200
    page = docs.page(slug)
    assert page.title and page.summary
    assert f"<title>{page.title} · Docs" in unescape(response.text)
    assert 'href="' + slug + ".md" not in response.text
    assert not re.search(r'href="[a-z0-9-]+\.md', response.text), "a link to a page that is not rewritten"


def test_every_page_in_the_repository_is_on_the_index(client, db):
    body = client.get("/docs/").text
    for path in REPO_DOCS.glob("*.md"):
        assert f'href="/docs/{path.stem}/"' in body, path.stem


# --- Generated from the configuration ---------------------------------------------------------------


def test_the_rate_limit_page_shows_the_numbers_of_the_tiers_as_they_are(client, db):
    sandbox = Tier.objects.get(slug="sandbox")
    sandbox.rate_quotas = {**sandbox.rate_quotas, "fhir_read": {"burst": 7, "per_minute": 98, "per_day": 43_210}}
    sandbox.save()
    verified = Tier.objects.get(slug="verified")
    verified.rate_quotas = {
        **verified.rate_quotas,
        "writes": {"burst": 3, "per_minute": 31, "per_day": 999, "per_token_per_minute": 11},
    }
    verified.save()

    body = client.get("/docs/rate-limits/").text
    tiers = list(Tier.objects.order_by("rank"))
    sandbox_column = 2 + tiers.index(sandbox)
    verified_column = 2 + tiers.index(verified)
    assert row(body, "org-fhir_read-second")[sandbox_column] == "7"
    assert row(body, "org-fhir_read-minute")[sandbox_column] == "98"
    assert row(body, "org-fhir_read-day")[sandbox_column] == "43,210"
    assert row(body, "token-fhir_read-minute")[sandbox_column] == "49"  # half of 98, as the limiter derives it
    assert row(body, "patient-fhir_read-minute")[sandbox_column] == "24"  # a quarter of 98, rounded down
    assert row(body, "org-writes-minute")[verified_column] == "31"
    assert row(body, "token-writes-minute")[verified_column] == "11"  # set explicitly: not derived
    assert row(body, "patient-writes-minute")[verified_column] == "7"
    # The header row names every tier, in rank order.
    assert re.findall(r'<th scope="col" class="num">([^<]+)</th>', body)[: len(tiers)] == [t.name for t in tiers]
    for group, description in ENDPOINT_GROUPS.items():
        assert f'<h3 id="group-{group}"><code>{group}</code>' in body, group
        assert unescape(description) in unescape(body)
    # The marker itself never reaches the reader.
    assert "generated:" not in body and "data-generated" not in body


def test_the_generated_tables_follow_what_the_limiters_enforce(db):
    """Every policy the limiters hold a request to, with the same name, quota and window, is on the
    page for every tier; and the page shows nothing they do not enforce."""
    tiers = list(Tier.objects.order_by("rank"))
    for group in ENDPOINT_GROUPS:
        rows = docs.policy_rows(tiers, group)
        for index, tier in enumerate(tiers):
            organization = SimpleNamespace(pk=1, tier=tier, rate_quota_overrides={})
            app = SimpleNamespace(pk=1, organization=organization)
            if group == token_limits.GROUP:
                enforced = [
                    *token_limits.client_policies(app),
                    *filter(None, [token_limits.address_policy("192.0.2.1"), token_limits.failure_policy("192.0.2.1")]),
                ]
            else:
                context = SimpleNamespace(
                    organization=organization, tier=tier, app=app, token_id="t", patient_id="Patient/1"
                )
                enforced = ratelimit.policies_for(context, group)
            documented = {(r.name, r.quotas[index], r.window) for r in rows if r.quotas[index]}
            assert documented == {(p.name, p.quota, p.window) for p in enforced}, (tier.slug, group)


def test_generated_values_are_escaped(client, db):
    sandbox = Tier.objects.get(slug="sandbox")
    sandbox.name = "<script>alert('tier')</script>"
    sandbox.allowed_scopes = [*sandbox.allowed_scopes, "<img src=x onerror=alert(1)>"]
    sandbox.save()
    for slug in ("rate-limits", "tiers"):
        body = client.get(f"/docs/{slug}/").text
        assert "<script>alert('tier')</script>" not in body
        assert "&lt;script&gt;alert(&#x27;tier&#x27;)&lt;/script&gt;" in body
        assert "<img src=x" not in body


def test_the_tiers_page_compares_the_tiers_as_configured(client, db):
    strategic = Tier.objects.get(slug="strategic")
    strategic.max_apps = 77
    strategic.rate_quotas = {**strategic.rate_quotas, "eligibility": {"burst": 4, "per_minute": 44, "per_day": 4_444}}
    strategic.save()
    body = unescape(client.get("/docs/tiers/").text)
    table = body[body.index('data-block="tier-comparison"') :]
    assert re.search(r"<th scope=\"row\">Apps</th>(<td>[^<]*</td>)*<td>77</td></tr>", table)
    assert "4/second · 44/minute · 4,444/day" in table
    assert "<code>system/*.read</code>" in table  # what Verified adds
    for group in ENDPOINT_GROUPS:
        assert f"Quota: <code>{group}</code>" in table
    for tier in Tier.objects.all():
        assert f'<th scope="col">{tier.name}</th>' in table


def test_the_quota_windows_are_the_ones_the_page_knows():
    # The tables name a window per quota key; a new window must be named on the page too.
    assert set(QUOTA_WINDOWS) == set(ratelimit.WINDOW_NAMES) == set(token_limits.WINDOW_NAMES)
