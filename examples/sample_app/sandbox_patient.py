"""A sandbox patient at a browser, scripted over HTTP: the ``user_agent`` of ``SampleApp``.

It signs in to the portal with the patient's email and password, opens the authorization URL, answers
the consent screen with Allow (keeping the boxes as they are ticked) and returns the URL the platform
redirected to, without following it: the app's https redirect URI need not exist on this machine, the
code and state are in the URL itself. A real app has a real browser here; this stands in for the person.
"""

import html
import re

import requests

HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
TICKED_CHECKBOX = re.compile(r'<input type="checkbox" name="([^"]+)" value="([^"]*)"[^>]*\schecked\b')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class SandboxPatient:
    def __init__(self, base_url: str, email: str, password: str, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.email, self.password = email, password
        self.timeout = timeout
        self.session = requests.Session()
        self.signed_in = False

    def sign_in(self) -> None:
        login = f"{self.base_url}/accounts/login/"
        page = self.session.get(login, timeout=self.timeout)
        token = CSRF.search(page.text)
        response = self.session.post(
            login,
            data={
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "username": self.email,
                "password": self.password,
            },
            headers={"Referer": login},
            allow_redirects=False,
            timeout=self.timeout,
        )
        if response.status_code != 302:
            raise RuntimeError(f"Signing in as {self.email} failed ({response.status_code}).")
        self.signed_in = True

    def __call__(self, authorization_url: str) -> str:
        if not self.signed_in:
            self.sign_in()
        page = self.session.get(authorization_url, allow_redirects=False, timeout=self.timeout)
        if page.status_code in (301, 302, 303):
            return page.headers["Location"]  # consented before, or refused at once: straight back to the app
        if page.status_code != 200:
            raise RuntimeError(f"The authorization page answered {page.status_code}: {page.text[:300]}")
        fields = [(name, html.unescape(value)) for name, value in HIDDEN_INPUT.findall(page.text)]
        fields += [(name, html.unescape(value)) for name, value in TICKED_CHECKBOX.findall(page.text)]
        fields.append(("allow", "Authorize"))
        response = self.session.post(
            authorization_url.split("?")[0],
            data=fields,
            headers={"Referer": authorization_url},
            allow_redirects=False,
            timeout=self.timeout,
        )
        if response.status_code != 302:
            raise RuntimeError(f"Approving the consent screen failed ({response.status_code}).")
        return response.headers["Location"]
