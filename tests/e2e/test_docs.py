"""The docs, in a real browser: a developer opens the docs, goes to a page from the sidebar, jumps to a
section from its table of contents, searches, follows a result to its page, and searches for something
the docs do not have; the admins' analytics count that search as one that found nothing."""

import re

import pytest
from playwright.sync_api import expect

from portal import search
from portal.models import PortalEvent

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(autouse=True)
def _fresh_index():
    # Another test's (rolled back) database may be what this process last indexed.
    search.forget()
    yield
    search.forget()


def test_navigate_and_search_the_docs(new_page):
    page = new_page()

    # The docs index, and a page from the sidebar.
    page.goto("/docs/")
    expect(page.get_by_role("heading", name="Documentation", level=1)).to_be_visible()
    sidebar = page.get_by_role("navigation", name="Documentation")
    sidebar.get_by_role("link", name="Authentication", exact=True).click()
    expect(page).to_have_url(re.compile(r"/docs/authentication/$"))
    expect(sidebar.get_by_role("link", name="Authentication", exact=True)).to_have_attribute("aria-current", "page")

    # The page's table of contents jumps to a section.
    toc = sidebar.get_by_role("list", name="On this page")
    toc.get_by_role("link", name="Endpoints").click()
    expect(page).to_have_url(re.compile(r"/docs/authentication/#endpoints$"))
    expect(page.locator("h2#endpoints")).to_be_in_viewport()

    # Search for a word the docs have: a result links to the section that has it.
    box = page.get_by_role("search").get_by_role("searchbox", name="Search the documentation")
    box.fill("PKCE")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/docs/search/\?q=PKCE$"))
    expect(page.get_by_role("status")).to_contain_text("for “PKCE”")
    results = page.locator("ol.search-results")
    result = results.locator('a[href^="/docs/authentication/"]').first
    expect(result).to_be_visible()
    expect(results.locator("mark").first).to_have_text(re.compile("pkce", re.IGNORECASE))
    target = result.get_attribute("href")
    result.click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))
    expect(page.get_by_role("heading", name="Authentication", level=1)).to_be_visible()

    # Search for something the docs do not have.
    box = page.get_by_role("searchbox", name="Search the documentation")
    box.fill("zebra carburetor")
    page.get_by_role("search").get_by_role("button", name="Search").click()
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Nothing found for “zebra carburetor”"))
    expect(page.locator("ol.search-results")).to_have_count(0)

    # Both searches were counted, the second as one that found nothing.
    searches = list(PortalEvent.objects.filter(kind=PortalEvent.Kind.SEARCH).order_by("at"))
    assert [(s.query, s.results > 0) for s in searches] == [("PKCE", True), ("zebra carburetor", False)]
    assert searches[1].results == 0
    viewed = set(PortalEvent.objects.filter(kind=PortalEvent.Kind.PAGE_VIEW).values_list("path", flat=True))
    assert {"/docs/", "/docs/authentication/"} <= viewed
