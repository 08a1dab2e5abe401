"""The scopes page is built from the scope registry: every documented scope, in the consent screen's words."""

import pytest
from django.utils.html import escape

from partners.scopes import NAMED_SCOPES, documented_scopes

pytestmark = pytest.mark.django_db


def test_every_documented_scope_is_on_the_page_with_its_consent_sentence(client):
    page = client.get("/docs/scopes/").content.decode()
    for scope in documented_scopes():
        name, sentence = escape(scope.name), escape(scope.sentence)
        assert f'<td id="{name}"><code>{name}</code></td><td>{sentence}</td>' in page


def test_a_new_named_scope_appears_without_editing_the_page(client, monkeypatch):
    from partners import scopes

    template = NAMED_SCOPES["events.read"]
    added = type(template)(**{**template.__dict__, "name": "claims.read", "sentence": "See your claims."})
    monkeypatch.setitem(scopes.NAMED_SCOPES, "claims.read", added)
    page = client.get("/docs/scopes/").content.decode()
    assert "<code>claims.read</code></td><td>See your claims.</td>" in page
