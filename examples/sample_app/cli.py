"""Run a sample app's whole flow against a running sandbox (``make run``); see examples/README.md.

    python -m examples.sample_app --client-id ... --client-secret ... --webhook-secret whsec_... \\
        --patient-email ... --patient-password ...

Without --patient-email it prints the authorization URL and asks you to paste the address your
browser was sent back to (the page itself will not load: the redirect URI is the app's, not yours).
"""

import argparse
import logging

from examples.sample_app.client import AppSettings, SampleApp
from examples.sample_app.sandbox_patient import SandboxPatient
from examples.sample_app.webhooks import WebhookReceiver


def _paste(url: str) -> str:
    print(f"\nOpen this in a browser, sign in as the sandbox patient and press Allow:\n\n  {url}\n")
    return input("Paste the address the browser was sent back to: ").strip()


def main(app_class=SampleApp, *, redirect_uri: str = "https://sample-app.example/callback", argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", default=redirect_uri, help="As registered with the app.")
    parser.add_argument("--webhook-secret", default="", help="The subscription's signing secret (whsec_...).")
    parser.add_argument("--webhook-port", type=int, default=8765)
    parser.add_argument("--patient-email", help="Sign in as this sandbox patient over HTTP instead of a browser.")
    parser.add_argument("--patient-password")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    settings = AppSettings(args.base_url, args.client_id, args.client_secret, args.redirect_uri, args.webhook_secret)
    agent = SandboxPatient(args.base_url, args.patient_email, args.patient_password) if args.patient_email else _paste
    app = app_class(settings, user_agent=agent)
    with WebhookReceiver(app, port=args.webhook_port) as receiver:
        print(f"Webhook receiver at {receiver.url}: subscribe it to consent.revoked on the app's Webhooks page.")
        print("Flow:", app.run())
        input(
            "\nNow revoke the app's access as the patient (My connected apps, /me/apps/) and press Enter: "
            "the app then tries to read the record again.\n"
        )
        for _ in range(3):
            print("After revocation:", app.read_record())
        input(
            "\nStart a certification run on the app's Certification page; it tests this webhook receiver live, "
            "so keep this running until the run is done, then press Enter.\n"
        )
