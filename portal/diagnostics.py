"""Diagnostics: the token inspector, and "Why was I denied?".

The token inspector: a member pastes a token one of their organizations' apps received and sees what
it is: app, environment, scopes in plain language, lifetime, end user and revocation state. The
lookup (``partners.token_selectors``) only ever finds tokens of the member's own organizations, and
the page answers any other token exactly as it answers one that does not exist.

"Why was I denied?": a member enters the correlation id of a 401, 403 or 429 one of their apps got
(the ``X-Request-ID`` header, or ``correlation_id`` in the body) and sees which layer refused, the
rule that was broken and the fix (``api.denials``). The same rule as the inspector: another
partner's id, an unknown, expired or malformed one all get the same "not found" answer.

Both are separate POSTs to their own address (so each has its own rate limit) rendering one page.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from api.denials import denial_lookup_for_member
from partners.token_selectors import token_lookup_for_member
from portal.forms import DenialLookupForm, TokenInspectForm
from portal.views import rate_limited

NOT_FOUND = "We found no token of your organizations' apps matching that value."
DENIAL_NOT_FOUND = "We found no refusal of your organizations' apps with that correlation id."


def _page(request, **context):
    return render(
        request,
        "portal/diagnostics.html",
        {
            "form": TokenInspectForm(),
            "report": None,
            "looked_up": False,
            "not_found": NOT_FOUND,
            "denial_form": DenialLookupForm(),
            "denial": None,
            "denial_looked_up": False,
            "denial_not_found": DENIAL_NOT_FOUND,
            "denial_days": settings.DENIAL_LOG_DAYS,
            "denials_per_hour": settings.DENIAL_LOG_PER_APP_PER_HOUR,
            **context,
        },
    )


@login_required
@never_cache  # a token's details (and the pasted value in the request) must stay out of every cache
@rate_limited(group="portal:diagnostics", key="user", rate="30/m")
def diagnostics(request):
    form = TokenInspectForm(request.POST or None)
    report, looked_up = None, False
    if request.method == "POST" and form.is_valid():
        report = token_lookup_for_member(request.user, form.cleaned_data["token"])
        looked_up = True
    return _page(request, form=form, report=report, looked_up=looked_up)


@login_required
@never_cache  # what refused an app's request is the organization's business only
@rate_limited(group="portal:denials", key="user", rate="30/m")
def denials(request):
    form = DenialLookupForm(request.POST or None)
    denial, looked_up = None, False
    if request.method == "POST" and form.is_valid():
        denial = denial_lookup_for_member(request.user, form.cleaned_data["correlation_id"])
        looked_up = True
    return _page(request, denial_form=form, denial=denial, denial_looked_up=looked_up)
