"""An app's webhook subscriptions in the portal: list, create, edit, enable and disable, delete, rotate
the secret, send a test event, and each subscription's delivery log with redeliver and replay.

Members of the app's organization see the pages (anyone else gets 404, as for the app itself); the
services check that the acting member may manage apps (developers and above), so a viewer's POST is
refused with the 403 page. Each view calls one ``partners.webhook_services`` function.

A signing secret is shown once: after create or rotation it waits in the session for exactly one view
of the subscription's page, which is sent with ``no-store``.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from partners import selectors, webhook_selectors, webhook_services
from partners.exceptions import InvalidState, NotPermitted
from portal.forms import (
    WebhookDisableForm,
    WebhookReplayForm,
    WebhookRotateForm,
    WebhookSubscriptionForm,
)
from portal.views import _app_or_404, _role_refusal, perform, rate_limited, refuse, submit

DELIVERY_LOG_PAGE_SIZE = 25


def secret_session_key(subscription_id: str) -> str:
    return f"portal:webhook-secret:{subscription_id}"


def _membership(request, app):
    return selectors.membership_for(user=request.user, organization=app.organization)


def _subscription_or_404(request, pk: int, subscription_id: str):
    app = _app_or_404(request, pk)
    subscription = webhook_selectors.subscription_of(app=app, subscription_id=subscription_id)
    if subscription is None:
        raise Http404("No such webhook subscription.")
    return app, subscription


def _detail_url(subscription) -> str:
    return reverse("portal:webhook-detail", args=[subscription.app_id, subscription.pk])


@login_required
def webhooks(request, pk):
    app = _app_or_404(request, pk)
    organization = app.organization
    used = webhook_selectors.subscription_count(organization)
    return render(
        request,
        "portal/webhooks.html",
        {
            "app": app,
            "organization": organization,
            "membership": _membership(request, app),
            "subscriptions": webhook_selectors.subscriptions_of(app),
            "used": used,
            "cap": organization.tier.max_webhook_subscriptions,
            "at_limit": used >= organization.tier.max_webhook_subscriptions,
        },
    )


def _form_page(request, app, form, *, subscription=None, status=200):
    return render(
        request,
        "portal/webhooks_form.html",
        {"app": app, "organization": app.organization, "form": form, "subscription": subscription},
        status=status,
    )


@login_required
def webhook_create(request, pk):
    app = _app_or_404(request, pk)
    membership = _membership(request, app)
    if not membership.can_manage_apps:
        return refuse(request, _role_refusal(membership, "managing webhooks"))
    if request.method != "POST":
        return _form_page(request, app, WebhookSubscriptionForm())
    form = WebhookSubscriptionForm(request.POST)
    status = 200
    if form.is_valid():
        submission = submit(
            request,
            form,
            lambda: webhook_services.webhook_subscription_create(app=app, actor=request.user, **form.cleaned_data),
            tier_limit_status=409,  # as the API answers it: the organization's subscriptions are all in use
        )
        if submission.refusal:
            return submission.refusal
        status = submission.status
        if submission.succeeded:
            subscription = submission.result
            request.session[secret_session_key(subscription.pk)] = {"secret": subscription.secret, "rotated": False}
            messages.success(request, "The subscription is created.")
            return redirect(_detail_url(subscription))
    return _form_page(request, app, form, status=status)


@login_required
def webhook_detail(request, pk, subscription_id):
    """The subscription, what can be done with it, and its delivery log (every attempt), newest first."""
    app, subscription = _subscription_or_404(request, pk, subscription_id)
    shown = request.session.pop(secret_session_key(subscription.pk), None)
    page = Paginator(webhook_selectors.deliveries_of(subscription), DELIVERY_LOG_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    response = render(
        request,
        "portal/webhooks_detail.html",
        {
            "app": app,
            "organization": app.organization,
            "membership": _membership(request, app),
            "subscription": subscription,
            "shown": shown,
            "page": page,
            "rotate_form": WebhookRotateForm(),
            "disable_form": WebhookDisableForm(),
            "replay_form": WebhookReplayForm(),
        },
    )
    if shown:
        add_never_cache_headers(response)  # includes no-store: the secret must not land in any cache
    return response


@login_required
def webhook_edit(request, pk, subscription_id):
    app, subscription = _subscription_or_404(request, pk, subscription_id)
    membership = _membership(request, app)
    if not membership.can_manage_apps:
        return refuse(request, _role_refusal(membership, "managing webhooks"))
    if request.method != "POST":
        form = WebhookSubscriptionForm(
            initial={
                "url": subscription.url,
                "event_types": subscription.event_types,
                "description": subscription.description,
            }
        )
        return _form_page(request, app, form, subscription=subscription)
    form = WebhookSubscriptionForm(request.POST)
    status = 200
    if form.is_valid():
        submission = submit(
            request,
            form,
            lambda: webhook_services.webhook_subscription_update(
                subscription=subscription, actor=request.user, **form.cleaned_data
            ),
        )
        if submission.refusal:
            return submission.refusal
        status = submission.status
        if submission.succeeded:
            messages.success(request, "Your changes are saved.")
            return redirect(_detail_url(subscription))
    return _form_page(request, app, form, subscription=subscription, status=status)


@login_required
@require_POST
def webhook_enable(request, pk, subscription_id):
    _, subscription = _subscription_or_404(request, pk, subscription_id)
    return perform(
        request,
        lambda: webhook_services.webhook_subscription_enable(subscription=subscription, actor=request.user),
        success="The subscription is enabled: new events are sent to it. Replay what it missed below.",
        then=_detail_url(subscription),
    )


@login_required
@require_POST
def webhook_disable(request, pk, subscription_id):
    _, subscription = _subscription_or_404(request, pk, subscription_id)
    form = WebhookDisableForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return perform(
        request,
        lambda: webhook_services.webhook_subscription_disable(
            subscription=subscription, actor=request.user, reason=reason
        ),
        success="The subscription is disabled: nothing is sent to it, and its pending deliveries are cancelled.",
        then=_detail_url(subscription),
    )


@login_required
@require_POST
def webhook_delete(request, pk, subscription_id):
    app, subscription = _subscription_or_404(request, pk, subscription_id)
    return perform(
        request,
        lambda: webhook_services.webhook_subscription_delete(subscription=subscription, actor=request.user),
        success=f"The subscription to {subscription.url} is deleted.",
        then=reverse("portal:webhooks", args=[app.pk]),
    )


@login_required
@require_POST
def webhook_rotate_secret(request, pk, subscription_id):
    _, subscription = _subscription_or_404(request, pk, subscription_id)
    form = WebhookRotateForm(request.POST)
    # An unreadable choice is still the service's to refuse, after it has checked the member's role.
    overlap_hours = form.cleaned_data["overlap_hours"] if form.is_valid() else None
    try:
        rotated = webhook_services.webhook_subscription_rotate_secret(
            subscription=subscription, actor=request.user, overlap_hours=overlap_hours
        )
    except NotPermitted as exc:
        return refuse(request, exc)
    except (InvalidState, ValidationError) as exc:
        messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
        return redirect(_detail_url(subscription))
    request.session[secret_session_key(rotated.pk)] = {
        "secret": rotated.secret,
        "rotated": True,
        "previous_until": rotated.previous_secret_expires_at.isoformat()
        if rotated.previous_secret_expires_at
        else None,
    }
    return redirect(_detail_url(rotated))


@login_required
@require_POST
@rate_limited(group="portal-webhook-send", key="user", rate="20/m")
def webhook_test(request, pk, subscription_id):
    _, subscription = _subscription_or_404(request, pk, subscription_id)
    return perform(
        request,
        lambda: webhook_services.webhook_test_send(subscription=subscription, actor=request.user),
        success="A test event is on its way; its delivery appears in the log below.",
        then=_detail_url(subscription),
    )


@login_required
@require_POST
@rate_limited(group="portal-webhook-send", key="user", rate="20/m")
def webhook_redeliver(request, pk, subscription_id, delivery_id):
    _, subscription = _subscription_or_404(request, pk, subscription_id)
    delivery = webhook_selectors.delivery_of(subscription=subscription, delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No such delivery.")
    return perform(
        request,
        lambda: webhook_services.webhook_redeliver(delivery=delivery, actor=request.user),
        success=f"The event {delivery.event.type} is sent again, as a new delivery at the top of the log.",
        then=_detail_url(subscription),
    )


def _replayed(result) -> str:
    if not result.queued:
        return "No events were sent to this subscription since then: nothing to replay."
    text = f"{result.queued} event{'s' if result.queued != 1 else ''} queued to be sent again, in sequence order."
    if not result.complete:
        text += f" That is the most one replay sends: replay again from {result.next_since:%Y-%m-%d %H:%M:%S} UTC."
    return text


@login_required
@require_POST
@rate_limited(group="portal-webhook-send", key="user", rate="20/m")
def webhook_replay(request, pk, subscription_id):
    _, subscription = _subscription_or_404(request, pk, subscription_id)
    form = WebhookReplayForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("since", ["Give the date and time to replay from."])))
        return redirect(_detail_url(subscription))
    return perform(
        request,
        lambda: webhook_services.webhook_replay(
            subscription=subscription, since=form.cleaned_data["since"], actor=request.user
        ),
        success=_replayed,
        then=_detail_url(subscription),
    )
