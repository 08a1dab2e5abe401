"""Diagnostics: the token inspector.

A member pastes a token one of their organizations' apps received and sees what it is: app,
environment, scopes in plain language, lifetime, end user and revocation state. The lookup
(``partners.token_selectors``) only ever finds tokens of the member's own organizations, and the
page answers any other token exactly as it answers one that does not exist.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from partners.token_selectors import token_lookup_for_member
from portal.forms import TokenInspectForm
from portal.views import rate_limited

NOT_FOUND = "We found no token of your organizations' apps matching that value."


@login_required
@never_cache  # a token's details (and the pasted value in the request) must stay out of every cache
@rate_limited(group="portal:diagnostics", key="user", rate="30/m")
def diagnostics(request):
    form = TokenInspectForm(request.POST or None)
    report, looked_up = None, False
    if request.method == "POST" and form.is_valid():
        report = token_lookup_for_member(request.user, form.cleaned_data["token"])
        looked_up = True
    return render(
        request,
        "portal/diagnostics.html",
        {"form": form, "report": report, "looked_up": looked_up, "not_found": NOT_FOUND},
    )
