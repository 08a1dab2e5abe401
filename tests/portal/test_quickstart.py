"""docs/quickstart.md works verbatim: its ```bash blocks run, in order, in one bash session, against
a live server seeded by the real ``seed_sandbox`` command.

What the test supplies, and nothing else: the three variables the quickstart tells the reader to
export (``SANDBOX_URL``, ``CLIENT_ID``, ``CLIENT_SECRET``, from ``seed_sandbox --json``), and the
browser for the one step the page leaves to a browser (sign in as the seeded patient, press Allow:
done here over HTTP, as tests/oauth's ``Browser`` does). The commands are not rewritten: the blocks
are joined as they are, each followed by a line that reports its number on a pipe of its own, so
the test knows every block ran to its end (``bash -euo pipefail`` stops at the first failure)
without touching what the reader sees on standard output.

The only fences on the page are ```bash (run) and ```text (expected output, never run): a step in any
other fence would be a step this test skips, so any other fence fails the test.
"""

import html
import json
import os
import re
import subprocess
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.core.management import call_command

from tests.oauth.conftest import HIDDEN_INPUT, TICKED_CHECKBOX

QUICKSTART = Path(settings.BASE_DIR) / "docs" / "quickstart.md"
RUN_FENCE = "bash"
OUTPUT_FENCE = "text"
FENCE_RE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
BROWSER_PROMPT = "Open this address in your browser:"
TIMEOUT = 120  # seconds for the whole walk-through


def fences(text: str) -> list[tuple[str, str]]:
    """Every fenced block of the page, (info string, body), in order."""
    return [(m[1].strip(), m[2]) for m in FENCE_RE.finditer(text)]


def runnable_blocks(text: str) -> list[str]:
    return [body for info, body in fences(text) if info == RUN_FENCE]


def session_script(blocks: list[str], report_fd: int) -> str:
    """The blocks as one script, each followed by a report of its number on ``report_fd``."""
    return "".join(f"{block}\nprintf '%s\\n' {number} >&{report_fd}\n" for number, block in enumerate(blocks, 1))


class PatientBrowser:
    """The patient at the browser: signs in with the seeded login and answers the consent screen by
    sending its hidden fields and the boxes left ticked, then follows the redirect to the listener."""

    def __init__(self, base_url: str, email: str, password: str):
        self.base_url = base_url
        self.session = requests.Session()
        login = f"{base_url}/accounts/login/"
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.session.get(login, timeout=10).text)[1]
        response = self.session.post(
            login,
            data={"csrfmiddlewaretoken": csrf, "username": email, "password": password},
            headers={"Referer": login},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, "the seeded patient's login failed"
        self.consent_screens = 0

    def approve(self, authorization_url: str) -> str:
        page = self.session.get(authorization_url, allow_redirects=False, timeout=10)
        assert page.status_code == 200, f"no consent screen: {page.status_code} {page.text[:300]}"
        self.consent_screens += 1
        fields = [(k, html.unescape(v)) for k, v in HIDDEN_INPUT.findall(page.text)]
        fields += [(k, html.unescape(v)) for k, v in TICKED_CHECKBOX.findall(page.text)]
        fields.append(("allow", "Authorize"))
        answer = self.session.post(
            authorization_url.split("?")[0],
            data=fields,
            headers={"Referer": authorization_url},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 302, answer.text[:300]
        callback = answer.headers["Location"]
        assert callback.startswith("http://127.0.0.1:"), callback  # the quickstart's loopback listener
        landed = requests.get(callback, timeout=10)  # the browser follows the redirect
        assert landed.status_code == 200
        return callback


def walk_through(blocks: list[str], env: dict, on_prompt) -> tuple[int, str, list[str]]:
    """Run the blocks in one bash session; when it asks for the browser, call ``on_prompt(url)``.
    Returns the exit status, the output (stdout and stderr, as the reader's terminal shows them) and
    the numbers of the blocks that ran to their end."""
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", session_script(blocks, write_fd)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        pass_fds=(write_fd,),
        env=env,
        text=True,
    )
    os.close(write_fd)
    reported: list[str] = []
    reader = threading.Thread(target=lambda: reported.extend(os.fdopen(read_fd).read().split()), daemon=True)
    reader.start()
    watchdog = threading.Timer(TIMEOUT, process.kill)
    watchdog.start()
    lines = []
    try:
        prompt_seen = False
        for line in process.stdout:
            lines.append(line)
            if prompt_seen:
                prompt_seen = False
                on_prompt(line.strip())
            elif line.startswith(BROWSER_PROMPT):
                prompt_seen = True
        status = process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    reader.join(5)
    return status, "".join(lines), reported


@pytest.fixture
def seeded(live_server, settings):
    """A live sandbox: served at live_server.url (the problems' ``type`` links too), its rate limits on
    as in production, and seeded by the real command, whose JSON says the logins and credentials."""
    settings.PUBLIC_BASE_URL = live_server.url
    settings.RATE_LIMITS = True
    out = StringIO()
    call_command("seed_sandbox", "--json", "--patients", "2", stdout=out)
    return json.loads(out.getvalue())


def test_the_page_has_only_run_and_output_fences():
    infos = [info for info, _body in fences(QUICKSTART.read_text(encoding="utf-8"))]
    assert infos.count(RUN_FENCE) >= 8
    assert set(infos) <= {RUN_FENCE, OUTPUT_FENCE}, f"a fence the quickstart test would not run: {set(infos)}"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_quickstart_runs_verbatim_against_a_live_sandbox(live_server, seeded):
    blocks = runnable_blocks(QUICKSTART.read_text(encoding="utf-8"))
    app, patient = seeded["app"], seeded["patient"]
    env = {
        **os.environ,
        "SANDBOX_URL": live_server.url,
        "CLIENT_ID": app["client_id"],
        "CLIENT_SECRET": app["client_secret"],
    }
    browsers = []

    def play_the_patient(authorization_url):
        assert authorization_url.startswith(f"{live_server.url}/oauth/authorize/?")
        browser = PatientBrowser(live_server.url, patient["email"], patient["password"])
        browser.approve(authorization_url)
        browsers.append(browser)

    started = time.monotonic()
    status, output, reported = walk_through(blocks, env, play_the_patient)

    assert status == 0, f"the quickstart failed after block {reported[-1] if reported else 0}:\n{output}"
    assert reported == [str(n) for n in range(1, len(blocks) + 1)], f"blocks that ran: {reported}\n{output}"
    assert len(browsers) == 1 and browsers[0].consent_screens == 1  # the patient saw the consent screen
    assert time.monotonic() - started < TIMEOUT

    # 1. discovery; 2. a client-credentials token
    assert f"{live_server.url}/oauth/token/" in output
    assert '"token_type": "Bearer"' in output and '"scope": "events.read"' in output
    # 3. a workflow API, with its rate-limit headers
    assert "HTTP/1.1 200 OK" in output
    assert re.search(r"^RateLimit-Policy: .*q=\d+;w=\d+", output, re.M)
    assert re.search(r'^RateLimit: "[a-z0-9_-]+";r=\d+;t=\d+', output, re.M)
    assert "deprecation.announced" in output  # the seeded feed's first event
    # 4. an error, as a problem whose type is a docs page that answers
    assert "HTTP/1.1 403 Forbidden" in output and "Content-Type: application/problem+json" in output
    assert '"code": "insufficient_scope"' in output
    assert f"200 {live_server.url}/docs/errors/insufficient_scope/" in output
    # 5-6. the patient's consent and token
    assert "code received on http://127.0.0.1:" in output
    assert f"Patient/{patient['fhir_patient_id']}" in output
    # 7. FHIR: the patient, then a searchset of lab results
    assert '"resourceType": "Patient"' in output and f'"id": "{patient["fhir_patient_id"]}"' in output
    assert re.search(r"^Bundle \d+$", output, re.M)
    # 8. a workflow write: an eligibility check
    assert "HTTP/1.1 201 Created" in output and '"outcome":"eligible"' in output
