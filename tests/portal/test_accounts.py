from django.urls import reverse

from partners.models import User
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.portal.conftest import link_in

SIGNUP = {
    "email": "New.Dev@Example.com",
    "first_name": "Nia",
    "last_name": "Dev",
    "password": DEFAULT_PASSWORD,
    "password_confirm": DEFAULT_PASSWORD,
}


def test_signup_creates_account_logs_in_and_emails_a_link_that_verifies(
    client, db, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("signup"), SIGNUP)

    assert response.status_code == 302
    assert response.url == reverse("portal:home")
    user = User.objects.get()
    assert user.email == "new.dev@example.com"
    assert not user.email_verified

    home = client.get(reverse("portal:home"))
    assert "We sent a confirmation link to new.dev@example.com" in home.text
    assert "Signed in as new.dev@example.com" in home.text

    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["new.dev@example.com"]
    assert mailoutbox[0].subject == "Confirm your email address"

    verified = client.get(link_in(mailoutbox[0]), follow=True)
    assert verified.status_code == 200
    assert "is confirmed" in verified.text
    user.refresh_from_db()
    assert user.email_verified


def test_verification_link_works_when_logged_out(client, db, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("signup"), SIGNUP)
    client.logout()
    response = client.get(link_in(mailoutbox[0]))
    assert response.status_code == 302
    assert response.url == reverse("login")
    assert User.objects.get().email_verified


def test_a_tampered_verification_link_verifies_nothing(client, db):
    user = UserFactory(email_verified_at=None)
    client.force_login(user)
    response = client.get(reverse("verify-email", args=["not-a-token"]), follow=True)
    assert "not valid" in response.text
    user.refresh_from_db()
    assert not user.email_verified


def test_signup_with_a_taken_email_shows_the_error_and_creates_nothing(client, db):
    UserFactory(email="new.dev@example.com")
    response = client.post(reverse("signup"), SIGNUP)
    assert response.status_code == 200
    assert "An account with this email address already exists" in response.text
    assert User.objects.count() == 1


def test_signup_rejects_a_weak_password_inline(client, db):
    response = client.post(reverse("signup"), {**SIGNUP, "password": "12345678", "password_confirm": "12345678"})
    assert response.status_code == 200
    assert 'id="id_password_error"' in response.text
    assert 'aria-describedby="id_password_helptext id_password_error"' in response.text
    assert not User.objects.exists()


def test_signup_rejects_mismatched_passwords(client, db):
    response = client.post(reverse("signup"), {**SIGNUP, "password_confirm": "something-else-entirely"})
    assert "The two passwords differ." in response.text
    assert not User.objects.exists()


def test_resend_sends_a_new_confirmation_email(client, db, mailoutbox, django_capture_on_commit_callbacks):
    user = UserFactory(email_verified_at=None)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("verify-email-resend"), follow=True)
    assert "We sent a new confirmation link" in response.text
    assert [m.to for m in mailoutbox] == [[user.email]]


def test_login_with_email_in_any_case_and_logout(client, db):
    user = UserFactory(email="dev@example.com")
    response = client.post(reverse("login"), {"username": "DEV@example.com", "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("portal:home")
    assert "Signed in as dev@example.com" in client.get(reverse("portal:home")).text

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    home = client.get(reverse("portal:home"))
    assert "Create a developer account" in home.text
    assert user.email not in home.text


def test_login_page_uses_an_email_field(client, db):
    response = client.get(reverse("login"))
    assert 'type="email"' in response.text
    assert "Email address" in response.text


def test_login_with_a_wrong_password_is_refused(client, db):
    UserFactory(email="dev@example.com")
    response = client.post(reverse("login"), {"username": "dev@example.com", "password": "wrong-password-123"})
    assert response.status_code == 200
    assert "Please enter a correct email address and password" in response.text


def test_login_posts_are_rate_limited_by_ip(client, db):
    for _ in range(10):
        assert client.post(reverse("login"), {"username": "x@example.com", "password": "nope"}).status_code == 200
    response = client.post(reverse("login"), {"username": "x@example.com", "password": "nope"})
    assert response.status_code == 429
    assert "Too many attempts" in response.text


def test_signup_posts_are_rate_limited_by_ip(client, db):
    for _ in range(10):
        client.post(reverse("signup"), {"email": "bad"})
    assert client.post(reverse("signup"), SIGNUP).status_code == 429
    assert not User.objects.exists()


def test_password_reset_emails_a_working_link(client, db, mailoutbox):
    user = UserFactory(email="dev@example.com")
    response = client.post(reverse("password_reset"), {"email": "dev@example.com"})
    assert response.status_code == 302
    assert response.url == reverse("password_reset_done")
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["dev@example.com"]
    assert mailoutbox[0].subject == "Reset your Healthcare Marketplace password"

    form_page = client.get(link_in(mailoutbox[0]), follow=True)
    assert "Choose a new password" in form_page.text
    new_password = "a-brand-new-passphrase-42"
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": new_password, "new_password2": new_password},
        follow=True,
    )
    assert "Your password is changed" in done.text
    user.refresh_from_db()
    assert user.check_password(new_password)


def test_password_change_requires_login_and_works(client, db):
    assert client.get(reverse("password_change")).status_code == 302
    user = UserFactory()
    client.force_login(user)
    new_password = "another-long-passphrase-7"
    response = client.post(
        reverse("password_change"),
        {"old_password": DEFAULT_PASSWORD, "new_password1": new_password, "new_password2": new_password},
        follow=True,
    )
    assert "Your password is changed" in response.text
    user.refresh_from_db()
    assert user.check_password(new_password)


def test_password_reset_posts_are_rate_limited(client, db, mailoutbox):
    UserFactory(email="dev@example.com")
    for _ in range(10):
        client.post(reverse("password_reset"), {"email": "dev@example.com"})
    assert client.post(reverse("password_reset"), {"email": "dev@example.com"}).status_code == 429
    assert len(mailoutbox) == 10


def test_signup_after_an_invitation_link_returns_to_it(client, db, django_capture_on_commit_callbacks):
    target = reverse("portal:invitation-accept", args=["some-token"])
    page = client.get(reverse("signup"), {"next": target, "email": "invitee@example.com"})
    assert 'value="invitee@example.com"' in page.text
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{reverse('signup')}?next={target}", {**SIGNUP, "next": target})
    assert response.status_code == 302
    assert response.url == target


def test_signup_ignores_an_offsite_next(client, db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("signup"), {**SIGNUP, "next": "https://evil.example/"})
    assert response.url == reverse("portal:home")
