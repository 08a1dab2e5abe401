"""A small partner app that does everything certification checks (see examples/README.md)."""

from examples.sample_app.client import AppSettings, OAuthError, SampleApp
from examples.sample_app.sandbox_patient import SandboxPatient
from examples.sample_app.webhooks import WebhookReceiver

__all__ = ["AppSettings", "OAuthError", "SampleApp", "SandboxPatient", "WebhookReceiver"]
