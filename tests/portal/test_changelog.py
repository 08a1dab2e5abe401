"""The changelog: entries admins publish in Django admin, /changelog/ with its filters, the Atom feed,
and each app's own feed of the entries touching endpoints it called in the last 30 days."""

import importlib
import re
from datetime import date, timedelta
from io import StringIO
from xml.etree import ElementTree

import feedparser
import pytest
from django.apps import apps as django_apps
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import signing
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from api import usage
from api.endpoints import parse_patterns
from partners.models import Membership
from portal import changelog
from portal.models import ChangelogEntry
from tests.factories import AppFactory, DeprecationFactory, UserFactory, member, record_calls
from tests.portal.conftest import login_as

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"
ADD = "admin:portal_changelogentry_add"
CHANGELIST = "admin:portal_changelogentry_changelist"
HISTORY = importlib.import_module("portal.migrations.0002_load_changelog_history")
ANNOUNCED = importlib.import_module("portal.migrations.0003_announce_docs_portal_and_certification")


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, email="editor@marketplace.test"))
    return client


@pytest.fixture
def no_history(db):
    """Only the entries a test makes: the history the data migration loaded names /api and /fhir/r4,
    which every app's calls touch."""
    ChangelogEntry.objects.all().delete()


def entry(slug, *, published=True, **fields) -> ChangelogEntry:
    defaults = {
        "date": date(2026, 11, 20),
        "version": ChangelogEntry.Version.V2,
        "kind": ChangelogEntry.Kind.ADDITIVE,
        "title": slug.replace("-", " ").capitalize(),
        "body": f"What {slug} changed.",
    }
    return ChangelogEntry.objects.create(slug=slug, published=published, **{**defaults, **fields})


def shown_slugs(response) -> list[str]:
    return re.findall(r'<article class="card changelog-entry" id="([^"]+)"', response.text)


def feed_entries(content: bytes) -> dict[str, ElementTree.Element]:
    root = ElementTree.fromstring(content)  # noqa: S314 -- our own response
    return {e.find(f"{ATOM}link[@rel='alternate']").get("href").split("#")[1]: e for e in root.iter(f"{ATOM}entry")}


# --- Django admin ---------------------------------------------------------------------------------


def admin_form(**overrides) -> dict:
    return {
        "date": "2026-11-26",
        "version": "v2",
        "kind": "breaking",
        "title": "Visits lose a field",
        "slug": "visits-lose-a-field",
        "body": "The `legacy` field is gone.",
        "affected_endpoints": "",
        "migration_notes": "",
        "deprecation": "",
        **overrides,
    }


def test_the_admin_refuses_an_entry_with_a_bad_endpoint_line_and_names_it(staff_client):
    response = staff_client.post(
        reverse(ADD),
        admin_form(affected_endpoints="GET /api/v2/visits\nvisits by id\nFETCH /api/v2/visits\n"),
    )
    assert response.status_code == 200
    assert not ChangelogEntry.objects.filter(slug="visits-lose-a-field").exists()
    errors = response.context["adminform"].form.errors["affected_endpoints"]
    assert errors[0].startswith("Line 2 (visits by id): 'visits by id' is not an endpoint")
    assert errors[1] == "Line 3 (FETCH /api/v2/visits): FETCH is not an HTTP method."
    assert "Line 2 (visits by id)" in response.text


def test_the_admin_saves_patterns_one_per_line_and_an_entry_starts_unpublished(staff_client):
    deprecation = DeprecationFactory(
        path_prefix="v2/widgets",
        title="v2 widgets",
        replacement="",
        migration_guide="/docs/versioning/",
        announced_at=timezone.now(),
    )
    response = staff_client.post(
        reverse(ADD),
        admin_form(
            kind="deprecation",
            affected_endpoints="  GET   /api/v2/visits/{visit_id}/ \n\n/api/v2/widgets\n/api/v2/widgets/\n",
            deprecation=deprecation.pk,
        ),
    )
    assert response.status_code == 302
    saved = ChangelogEntry.objects.get(slug="visits-lose-a-field")
    assert saved.affected_endpoints == "GET /api/v2/visits/{visit_id}\n/api/v2/widgets"
    assert saved.deprecation == deprecation
    assert saved.published is False
    assert staff_client.get(reverse(CHANGELIST), {"q": "lose", "kind__exact": "deprecation"}).status_code == 200


def test_the_admin_previews_the_rendered_body_and_publishes_and_unpublishes(staff_client, client):
    draft = entry("draft", published=False, body="**Bold** and <script>alert(1)</script> [tiers](tiers.md)")
    page = staff_client.get(reverse("admin:portal_changelogentry_change", args=[draft.pk]))
    assert page.status_code == 200
    assert "<strong>Bold</strong>" in page.text and '<a href="/docs/tiers/">tiers</a>' in page.text
    assert "<script>alert(1)" not in page.text

    done = staff_client.post(reverse(CHANGELIST), {"action": "publish", ACTION_CHECKBOX_NAME: [draft.pk]}, follow=True)
    assert "1 entry published." in done.text
    draft.refresh_from_db()
    assert draft.published
    assert "draft" in shown_slugs(client.get("/changelog/"))

    staff_client.post(reverse(CHANGELIST), {"action": "unpublish", ACTION_CHECKBOX_NAME: [draft.pk]})
    draft.refresh_from_db()
    assert not draft.published


# --- The page ------------------------------------------------------------------------------------


def test_the_changelog_is_public_and_shows_only_published_entries(client, no_history):
    deprecation = DeprecationFactory(
        path_prefix="v1/visits",
        title="v1 visits",
        replacement="",
        migration_guide="/docs/migrating-to-v2/",
        announced_at=timezone.now(),
    )
    entry(
        "v1-visits-deprecated",
        date=date(2026, 11, 24),
        version="v1",
        kind="deprecation",
        body="See [Migrating](migrating-to-v2.md).",
        affected_endpoints="/api/v1/visits\nGET /fhir/r4/Patient",
        migration_notes="Move to **v2**.",
        deprecation=deprecation,
    )
    entry("newer", date=date(2026, 11, 25))
    entry("secret-draft", published=False)

    response = client.get("/changelog/")
    assert response.status_code == 200
    assert shown_slugs(response) == ["newer", "v1-visits-deprecated"]
    body = response.text
    assert "secret-draft" not in body and "Secret draft" not in body
    assert '<span class="badge badge-kind-deprecation">Deprecation</span>' in body
    assert '<a href="/docs/migrating-to-v2/">Migrating</a>' in body
    assert "<strong>v2</strong>" in body  # the migration notes, rendered
    # An /api/vN/ endpoint links to its version's reference; a FHIR one has none.
    assert '<code>/api/v1/visits</code> <a href="/api/reference/v1/">' in body
    assert "<code>GET /fhir/r4/Patient</code></li>" in body
    assert 'href="/deprecations/#v1visits"' in body
    assert '<link rel="alternate" type="application/atom+xml"' in body
    assert 'href="http://testserver/changelog/feed.xml"' in body
    assert 'href="/changelog/feed.xml"' in body  # the visible link
    assert "public" in response["Cache-Control"]


def test_the_filters_narrow_the_list_and_the_feed_link_keeps_them(client, no_history):
    entry("v2-visits", version="v2", kind="breaking", affected_endpoints="/api/v2/visits", date=date(2026, 11, 3))
    entry("v1-visit-read", version="v1", kind="fix", affected_endpoints="GET /api/v1/visits/{visit_id}")
    entry("v2-shares", version="v2", kind="additive", affected_endpoints="POST /api/v2/lab-results")
    entry("no-endpoints", version="platform", kind="fix", date=date(2026, 10, 1))

    def slugs(**params):
        response = client.get("/changelog/", params)
        assert response.status_code == 200, response.text
        return sorted(shown_slugs(response))

    assert slugs(version="v2") == ["v2-shares", "v2-visits"]
    assert slugs(kind="fix") == ["no-endpoints", "v1-visit-read"]
    assert slugs(version="v2", kind="breaking") == ["v2-visits"]
    # An entry about a route concerns the routes below it, and the other way round; methods must agree.
    assert slugs(endpoint="GET /api/v2/visits/{visit_id}") == ["v2-visits"]
    assert slugs(endpoint="/api/v1") == ["v1-visit-read"]
    assert slugs(endpoint="GET /api/v2/lab-results/shares") == []
    assert slugs(endpoint="/api/v2/lab-results/{observation_id}/shares") == ["v2-shares"]
    assert slugs(since="2026-11-01", until="2026-11-10") == ["v2-visits"]

    page = client.get("/changelog/", {"version": "v2", "kind": "breaking", "unrelated": "x"})
    assert 'href="/changelog/feed.xml?version=v2&amp;kind=breaking"' in page.text
    feed = client.get("/changelog/feed.xml", {"version": "v2", "kind": "breaking"})
    assert list(feed_entries(feed.content)) == ["v2-visits"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"version": "v9"}, "“v9” is not a version the changelog knows"),
        ({"kind": "rumour"}, "“rumour” is not a kind of change"),
        ({"endpoint": "visits"}, "&#x27;visits&#x27; is not an endpoint"),
        ({"endpoint": "FETCH /api/v1/visits"}, "FETCH is not an HTTP method."),
        ({"since": "yesterday"}, "Enter a valid date."),
        ({"since": "2026-11-10", "until": "2026-11-01"}, "The end date is before the start date."),
    ],
)
def test_a_bad_filter_value_is_a_message_not_an_error_page(client, params, message):
    response = client.get("/changelog/", params)
    assert response.status_code == 400
    assert message in response.text
    assert shown_slugs(response) == []
    feed = client.get("/changelog/feed.xml", params)
    assert feed.status_code == 400
    assert feed["Content-Type"].startswith("text/plain")


def test_the_docs_list_the_changelog_and_its_old_address_redirects(client):
    index = client.get("/docs/")
    assert '<a href="/changelog/">Changelog</a>' in index.text  # the sidebar
    assert '<h3 class="card-title"><a href="/changelog/">Changelog</a></h3>' in index.text  # the index
    page = client.get("/changelog/")
    assert '<a href="/changelog/" aria-current="page">Changelog</a>' in page.text
    old = client.get("/docs/changelog/")
    assert old.status_code == 301
    assert old["Location"] == "/changelog/"


# --- The Atom feed -------------------------------------------------------------------------------


def test_the_feed_is_valid_atom(client, no_history):
    entry(
        "v2-breaking",
        kind="breaking",
        date=date(2026, 11, 25),
        body="**Breaks** <script>alert(1)</script> see [Tiers](tiers.md).",
        affected_endpoints="/api/v2/visits",
        migration_notes="Read `period`.",
    )
    entry("older-fix", kind="fix", version="fhir-r4", date=date(2026, 11, 2))
    entry("unpublished", published=False)

    response = client.get("/changelog/feed.xml")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/atom+xml; charset=utf-8"

    root = ElementTree.fromstring(response.content)  # noqa: S314 -- our own response
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}id") == "tag:testserver,2026-11-24:changelog"
    assert root.findtext(f"{ATOM}title") == "Healthcare Marketplace API changelog"
    assert root.findtext(f"{ATOM}updated")
    assert root.find(f"{ATOM}link[@rel='self']").get("href") == "http://testserver/changelog/feed.xml"
    assert root.find(f"{ATOM}link[@rel='alternate']").get("href") == "http://testserver/changelog/"
    assert root.findtext(f"{ATOM}author/{ATOM}name") == "Healthcare Marketplace"

    entries = feed_entries(response.content)
    assert list(entries) == ["v2-breaking", "older-fix"]
    for slug, element in entries.items():
        assert element.findtext(f"{ATOM}id") == f"tag:testserver,2026-11-24:changelog/{slug}"
        assert element.findtext(f"{ATOM}title")
        assert element.findtext(f"{ATOM}updated")
        assert element.findtext(f"{ATOM}published")
        assert element.find(f"{ATOM}link[@rel='alternate']").get("href") == f"http://testserver/changelog/#{slug}"
    breaking = entries["v2-breaking"]
    assert breaking.findtext(f"{ATOM}title") == "Breaking: V2 breaking"
    assert breaking.findtext(f"{ATOM}published") == "2026-11-25T00:00:00+00:00"
    assert {(c.get("term"), c.get("label")) for c in breaking.iter(f"{ATOM}category")} == {
        ("breaking", "Breaking"),
        ("v2", "API v2"),
    }
    content = breaking.find(f"{ATOM}content")
    assert content.get("type") == "html"
    assert "<strong>Breaks</strong>" in content.text
    assert "<script" not in content.text
    assert '<a href="http://testserver/docs/tiers/">Tiers</a>' in content.text  # absolute links only
    assert '<a href="http://testserver/api/reference/v2/">API reference</a>' in content.text
    assert "<code>period</code>" in content.text

    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert [e.id for e in parsed.entries] == [
        "tag:testserver,2026-11-24:changelog/v2-breaking",
        "tag:testserver,2026-11-24:changelog/older-fix",
    ]
    assert parsed.entries[0].content[0].type == "text/html"


def test_an_entry_keeps_its_id_when_edited_and_an_empty_feed_is_still_valid(client, no_history):
    edited = entry("stable", title="First title")
    before = feed_entries(client.get("/changelog/feed.xml").content)["stable"]
    edited.title, edited.date = "Second title", date(2026, 11, 21)
    edited.save()
    after = feed_entries(client.get("/changelog/feed.xml").content)["stable"]
    assert after.findtext(f"{ATOM}id") == before.findtext(f"{ATOM}id")
    assert after.findtext(f"{ATOM}title") == "Additive: Second title"

    ChangelogEntry.objects.all().delete()
    empty = client.get("/changelog/feed.xml")
    assert not feedparser.parse(empty.content).bozo
    assert feed_entries(empty.content) == {}


# --- An app's own feed -----------------------------------------------------------------------------


@pytest.fixture
def caller(no_history):
    """An app that called v2 visits two days ago and lab-result shares 31 days ago, and the entries
    about those endpoints, about another one, and one not published."""
    app = AppFactory(name="Clinic Scheduler")
    now = timezone.now()
    record_calls(app, "GET /api/v2/visits/{visit_id}", 3, now - timedelta(days=2))
    record_calls(app, "POST /api/v2/visits", 2, now)
    record_calls(app, "POST /api/v1/lab-results/{observation_id}/shares", 4, now - timedelta(days=31))
    record_calls(AppFactory(), "GET /fhir/r4/Patient", 5, now)  # another app's calls
    usage.flush()
    usage.rollup(hours=[now - timedelta(days=2), now - timedelta(days=31)], now=now)
    entry("v2-visits-change", affected_endpoints="/api/v2/visits", date=date(2026, 11, 25))
    entry("visit-reads-only", kind="fix", affected_endpoints="GET /api/v2/visits/{visit_id}", date=date(2026, 11, 24))
    entry("lab-shares-change", affected_endpoints="/api/v1/lab-results")
    entry("patient-change", affected_endpoints="/fhir/r4/Patient")
    entry("no-endpoints")
    entry("draft-visits-change", published=False, affected_endpoints="/api/v2/visits")
    return app


def test_an_apps_feed_holds_only_entries_touching_endpoints_it_called_in_the_last_30_days(client, caller):
    found = changelog.changelog_entries_for_app(caller)
    assert [(f.entry.slug, [(c.endpoint, c.calls) for c in f.calls]) for f in found] == [
        ("v2-visits-change", [("GET /api/v2/visits/{visit_id}", 3), ("POST /api/v2/visits", 2)]),
        ("visit-reads-only", [("GET /api/v2/visits/{visit_id}", 3)]),
    ]

    url = changelog.app_feed_url(caller)
    assert url.startswith("http://testserver/changelog/apps/") and url.endswith("/feed.xml")
    response = client.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200
    assert "private" in response["Cache-Control"]
    entries = feed_entries(response.content)
    assert list(entries) == ["v2-visits-change", "visit-reads-only"]
    content = entries["v2-visits-change"].find(f"{ATOM}content").text
    assert "<li><code>GET /api/v2/visits/{visit_id}</code>: 3 calls</li>" in content
    assert "<li><code>POST /api/v2/visits</code>: 2 calls</li>" in content
    root = ElementTree.fromstring(response.content)  # noqa: S314 -- our own response
    assert root.findtext(f"{ATOM}title") == "Healthcare Marketplace API changelog: Clinic Scheduler"
    assert root.find(f"{ATOM}link[@rel='self']").get("href") == url
    assert root.findtext(f"{ATOM}id") == f"tag:testserver,2026-11-24:changelog/apps/{caller.pk}"
    assert not feedparser.parse(response.content).bozo


def test_an_app_that_called_nothing_has_an_empty_feed(client, caller):
    idle = AppFactory()
    response = client.get(changelog.app_feed_url(idle).removeprefix("http://testserver"))
    assert response.status_code == 200
    assert feed_entries(response.content) == {}


def test_a_tampered_or_foreign_token_is_a_404(client, caller):
    token = changelog.app_feed_token(caller)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    other_salt = signing.dumps(caller.pk)  # signed, but not for this
    no_such_app = signing.dumps(999_999, salt=changelog.APP_FEED_SALT)
    not_an_id = signing.dumps("1", salt=changelog.APP_FEED_SALT)
    for bad in (tampered, other_salt, no_such_app, not_an_id, "nonsense"):
        assert client.get(f"/changelog/apps/{bad}/feed.xml").status_code == 404, bad


def test_a_new_feed_address_retires_the_old_one(client, caller):
    old = changelog.app_feed_url(caller).removeprefix("http://testserver")
    first_address = f"/changelog/apps/{signing.dumps(caller.pk, salt=changelog.APP_FEED_SALT)}/feed.xml"
    assert client.get(first_address).status_code == 200  # the bare-id addresses of the first day still work
    owner = member(Membership.Role.OWNER, organization=caller.organization)
    client.force_login(owner.user)

    response = client.post(f"/apps/{caller.pk}/changelog/rotate-feed/")

    assert response.status_code == 302 and response["Location"] == f"/apps/{caller.pk}/changelog/"
    caller.refresh_from_db()
    new = changelog.app_feed_url(caller).removeprefix("http://testserver")
    assert new != old
    assert client.get(new).status_code == 200
    assert client.get(old).status_code == 404
    assert client.get(first_address).status_code == 404
    assert new in client.get(f"/apps/{caller.pk}/changelog/").text


def test_only_members_who_manage_apps_get_a_new_feed_address(client, caller):
    old = changelog.app_feed_url(caller).removeprefix("http://testserver")
    login_as(client, Membership.Role.VIEWER, organization=caller.organization)
    page = client.get(f"/apps/{caller.pk}/changelog/")
    assert "New feed address" not in page.text
    assert client.post(f"/apps/{caller.pk}/changelog/rotate-feed/").status_code == 403
    login_as(client, Membership.Role.OWNER)  # of another organization
    assert client.post(f"/apps/{caller.pk}/changelog/rotate-feed/").status_code == 404
    assert client.get(old).status_code == 200


def test_the_app_page_shows_its_feed_and_its_changelog_page_lists_the_entries(client, caller):
    owner = member(Membership.Role.OWNER, organization=caller.organization)
    client.force_login(owner.user)
    detail = client.get(f"/apps/{caller.pk}/")
    assert detail.status_code == 200
    assert changelog.app_feed_url(caller) in detail.text
    assert "<strong>2 changes</strong> in the changelog touch" in detail.text
    assert f'href="/apps/{caller.pk}/changelog/"' in detail.text

    page = client.get(f"/apps/{caller.pk}/changelog/")
    assert page.status_code == 200
    assert shown_slugs(page) == ["v2-visits-change", "visit-reads-only"]
    assert "<li><code>GET /api/v2/visits/{visit_id}</code> — 3 calls</li>" in page.text
    assert changelog.app_feed_url(caller) in page.text


def test_an_apps_changelog_page_is_for_members_of_its_organization_only(client, caller):
    assert client.get(f"/apps/{caller.pk}/changelog/").status_code == 302  # to the login page
    login_as(client, Membership.Role.OWNER)  # of another organization
    assert client.get(f"/apps/{caller.pk}/changelog/").status_code == 404
    login_as(client, Membership.Role.VIEWER, organization=caller.organization)
    assert client.get(f"/apps/{caller.pk}/changelog/").status_code == 200


# --- The history: docs/changelog.md as rows -----------------------------------------------------


def test_the_history_is_loaded_published_with_valid_endpoints(client):
    history = ChangelogEntry.objects.filter(slug__in=[e["slug"] for e in HISTORY.ENTRIES])
    assert history.count() == len(HISTORY.ENTRIES) == 29
    assert all(e.published for e in history)
    for loaded in history:
        parse_patterns(loaded.affected_endpoints)  # raises on a line that is not a pattern
    deprecated = ChangelogEntry.objects.get(slug="2026-11-24-v1-visits-deprecated")
    assert (deprecated.kind, deprecated.version, deprecated.affected_endpoints) == (
        "deprecation",
        "v1",
        "/api/v1/visits",
    )
    assert ChangelogEntry.objects.get(slug="2026-11-24-api-v2").kind == "breaking"
    assert ChangelogEntry.objects.get(slug="2026-11-25-quota-exceeded-code").kind == "fix"
    page = client.get("/changelog/")
    history_slugs = {e["slug"] for e in HISTORY.ENTRIES}
    slugs = [slug for slug in shown_slugs(page) if slug in history_slugs]
    # Newest first, and within a day in the order the hand-written file had.
    assert slugs[0] == "2026-11-25-event-catalogue"
    assert slugs.index("2026-11-25-docs-portal") < slugs.index("2026-11-24-rate-limits")
    assert slugs[-1] == "2026-11-24-problem-details"


def test_the_history_migration_reverses_and_loads_again(db):
    history = ChangelogEntry.objects.filter(slug__in=[e["slug"] for e in HISTORY.ENTRIES])
    HISTORY.unload(django_apps, None)
    assert not history.exists()
    HISTORY.load(django_apps, None)
    HISTORY.load(django_apps, None)  # again: the same rows, not twice as many
    assert history.count() == len(HISTORY.ENTRIES)


def test_the_docs_portal_and_certification_are_announced_in_the_changelog(client):
    announced = ChangelogEntry.objects.filter(slug__in=[e["slug"] for e in ANNOUNCED.ENTRIES])
    assert announced.count() == len(ANNOUNCED.ENTRIES) == 5
    for entry in announced:
        assert entry.published
        parse_patterns(entry.affected_endpoints)  # raises on a line that is not a pattern
    page = client.get("/changelog/?version=oauth")
    assert shown_slugs(page)[0] == "2026-11-25-oauth-errors-carry-correlation-id"  # the newest OAuth change


def test_a_seeded_sandbox_shows_the_history_with_its_deprecation_linked(client):
    call_command("seed_sandbox", "--patients", "0", stdout=StringIO())
    deprecated = ChangelogEntry.objects.get(slug="2026-11-24-v1-visits-deprecated")
    assert deprecated.deprecation.path_prefix == "v1/visits"
    page = client.get("/changelog/")
    assert len(shown_slugs(page)) >= len(HISTORY.ENTRIES)
    assert 'href="/deprecations/#v1visits"' in page.text
