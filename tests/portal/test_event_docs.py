"""/docs/events/ and /docs/webhooks/: the catalogue generated from the one the platform publishes from,
an anchor per type, escaped; and the verification code the webhooks page gives partners actually
verifies what the platform signs."""

import base64
import json
import re
import time
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings

from partners import events
from partners.models import Tier
from portal import docs

REPO_DOCS = Path(settings.BASE_DIR) / "docs"


def code_blocks(slug: str, language: str) -> list[str]:
    text = (REPO_DOCS / f"{slug}.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_events_page_shows_every_type_with_its_anchor_example_and_schema(client, db):
    response = client.get("/docs/events/")
    assert response.status_code == 200
    body = response.text
    assert 'data-block="event-catalogue"' in body
    for name, event_type in events.CATALOGUE.items():
        anchor = name.replace(".", "-").replace("_", "-")
        assert f'<h3 id="{anchor}">' in body, name
        assert f'href="#{anchor}"' in body, name  # the index links to it
        assert f"version {event_type.version}" in body
    text = unescape(re.sub(r"<[^>]+>", "", body))
    for event_type in events.CATALOGUE.values():
        assert event_type.summary in text
        assert f'"title": "{event_type.name}"' in text  # its schema
        assert f'"type": "{event_type.name}"' in text  # its example message
    assert 'class="highlight"' in body
    for section in ("The event feed", "Ordering and delivery guarantees", "Retention", "Versions of payloads"):
        assert section in text


def test_the_pages_are_in_the_docs_index(client, db):
    index = client.get("/docs/").text
    assert 'href="/docs/events/"' in index and 'href="/docs/webhooks/"' in index
    listed = [slug for _, slugs in docs.SECTIONS for slug in slugs]
    assert "events" in listed and "webhooks" in listed


def test_catalogue_text_is_escaped(client, db, monkeypatch):
    hostile = events.EventType(
        "x.<script>",
        "<script>alert('summary')</script>",
        events.EVERYONE,
        {"type": "object"},
        {"note": "<img src=x onerror=alert(1)>"},
        cause="<b>bold</b>",
    )
    monkeypatch.setitem(events.CATALOGUE, hostile.name, hostile)
    body = client.get("/docs/events/").text
    assert "<script>alert" not in body
    assert "<img src=x" not in body and "<b>bold</b>" not in body
    assert "&lt;script&gt;alert(&#x27;summary&#x27;)&lt;/script&gt;" in body


def test_the_webhooks_page_renders_with_the_tiers_caps(client, db):
    Tier.objects.filter(slug="sandbox").update(max_webhook_subscriptions=3)
    response = client.get("/docs/webhooks/")
    assert response.status_code == 200
    body = response.text
    assert 'data-block="webhook-subscription-caps"' in body
    text = unescape(re.sub(r"<[^>]+>", "", body))
    for heading in ("Verifying a message", "Retries", "Replay and redelivery", "The delivery log", "Troubleshooting"):
        assert heading in text
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert header in text
    caps = re.search(r'data-block="webhook-subscription-caps".*?</table>', body, re.S)[0]
    assert '<td class="num">3</td>' in caps


def _signed(secret: str, body: bytes, *, previous: str = "", timestamp: int | None = None):
    """A message as the platform's sender signs it (``partners.webhooks``)."""
    from partners import webhooks

    timestamp = int(time.time()) if timestamp is None else timestamp
    msg_id = "evt_" + "ab" * 16
    signatures = [webhooks.sign(secret, msg_id, timestamp, body)]
    if previous:
        signatures.insert(0, webhooks.sign(previous, msg_id, timestamp, body))
    headers = {"Webhook-Id": msg_id, "Webhook-Timestamp": str(timestamp), "Webhook-Signature": " ".join(signatures)}
    return headers


SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = json.dumps(
    {"id": "evt_" + "ab" * 16, "type": "webhook.test", "data": {"n": "é"}}, separators=(",", ":")
).encode()


def test_the_hand_written_python_verifier_verifies_what_the_platform_signs():
    (sample,) = [block for block in code_blocks("webhooks", "python") if "def verify(" in block]
    namespace: dict = {}
    exec(compile(sample, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own documentation
    verify, invalid = namespace["verify"], namespace["Invalid"]

    assert verify(SECRET, _signed(SECRET, BODY), BODY)["data"] == {"n": "é"}
    # During a rotation the message carries both signatures; either secret verifies it.
    rotating = _signed(SECRET, BODY, previous=OLD_SECRET)
    assert verify(SECRET, rotating, BODY) and verify(OLD_SECRET, rotating, BODY)
    with pytest.raises(invalid):
        verify(SECRET, _signed(SECRET, BODY), BODY.replace(b"webhook.test", b"tier.changed"))
    with pytest.raises(invalid):
        verify(OLD_SECRET, _signed(SECRET, BODY), BODY)
    with pytest.raises(invalid):
        verify(SECRET, _signed(SECRET, BODY, timestamp=int(time.time()) - 301), BODY)
    with pytest.raises(invalid):
        verify(SECRET, {}, BODY)


def test_the_standard_webhooks_library_verifies_what_the_platform_signs():
    standardwebhooks = pytest.importorskip("standardwebhooks")
    rotating = _signed(SECRET, BODY, previous=OLD_SECRET)
    for secret in (SECRET, OLD_SECRET):
        assert standardwebhooks.Webhook(secret).verify(BODY, rotating)["type"] == "webhook.test"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(BODY, _signed(OLD_SECRET, BODY))
