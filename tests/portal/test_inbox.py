from django.urls import reverse

from partners.models import InboxMessage
from tests.factories import UserFactory


def notify(user, subject="Your tier changed", **kwargs):
    return InboxMessage.objects.create(recipient=user, subject=subject, body="Line one.\n\nLine two.", **kwargs)


def test_inbox_lists_messages_unread_in_bold_and_counts_them(client, db):
    user = UserFactory()
    notify(user, subject="First news")
    notify(user, subject="Second news")
    client.force_login(user)
    page = client.get(reverse("portal:inbox"))
    assert page.status_code == 200
    assert "First news" in page.text and "Second news" in page.text
    assert page.text.count('class="inbox-item is-unread"') == 2
    assert '2<span class="visually-hidden"> unread</span>' in page.text  # the nav badge


def test_opening_a_message_shows_it_and_marks_it_read(client, db):
    user = UserFactory()
    message = notify(user, subject="Suspension lifted", link=reverse("portal:tiers"))
    client.force_login(user)
    page = client.get(reverse("portal:inbox-message", args=[message.pk]))
    assert page.status_code == 200
    assert "Suspension lifted" in page.text
    assert "Line two." in page.text
    assert f'href="{reverse("portal:tiers")}"' in page.text
    message.refresh_from_db()
    assert message.read_at is not None
    inbox = client.get(reverse("portal:inbox"))
    assert 'class="inbox-item is-unread"' not in inbox.text


def test_an_external_or_script_link_is_not_rendered(client, db):
    user = UserFactory()
    message = notify(user, link="javascript:alert(1)")
    client.force_login(user)
    page = client.get(reverse("portal:inbox-message", args=[message.pk]))
    assert "javascript:" not in page.text


def test_another_users_message_is_404_and_stays_unread(client, db):
    message = notify(UserFactory())
    client.force_login(UserFactory())
    assert client.get(reverse("portal:inbox-message", args=[message.pk])).status_code == 404
    message.refresh_from_db()
    assert message.read_at is None
    assert "Your tier changed" not in client.get(reverse("portal:inbox")).text
