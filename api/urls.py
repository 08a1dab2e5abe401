"""Workflow and platform APIs under /api/, each version's OpenAPI document and its reference.

Every route exists once per version in ``api.openapi.VERSIONS`` (a version is complete); v1's
platform routes keep their historical names (``api:token-info``), later versions' are prefixed
(``api:v2-token-info``), like every workflow route (``api:v1-visits``, ``api:v2-visits``).
"""

from django.urls import path

from api import consents, schema_views, views
from api.openapi import VERSIONS
from api.workflows import eligibility_api, event_feed_api, lab_share_api, visit_api, webhook_api

VISITS = {version: visit_api.versioned_views(version) for version in VERSIONS}
LAB_SHARES = {version: lab_share_api.versioned_views(version) for version in VERSIONS}
ELIGIBILITY = {version: eligibility_api.versioned_views(version) for version in VERSIONS}
EVENTS = {version: event_feed_api.versioned_views(version) for version in VERSIONS}
WEBHOOKS = {version: webhook_api.versioned_views(version) for version in VERSIONS}
# (view, path under /webhooks/<id>/, route name suffix)
WEBHOOK_ACTIONS = (
    ("rotate", "rotate-secret", "rotate-secret"),
    ("enable", "enable", "enable"),
    ("disable", "disable", "disable"),
    ("test", "test", "test"),
    ("deliveries", "deliveries", "deliveries"),
    ("redeliver", "deliveries/<int:delivery_id>/redeliver", "redeliver"),
    ("replay", "replay", "replay"),
)

app_name = "api"

urlpatterns = [
    path("schema/<str:version>/", schema_views.SchemaView.as_view(), name="schema"),
    path("reference/<str:version>/", schema_views.ReferenceView.as_view(), name="reference"),
    *[
        route
        for version in VERSIONS
        for name_prefix in ("" if version == "v1" else f"{version}-",)
        for route in (
            path(f"{version}/token-info", views.TokenInfoView.as_view(), name=f"{name_prefix}token-info"),
            path(f"{version}/consents", consents.ConsentCollectionView.as_view(), name=f"{name_prefix}consents"),
            path(
                f"{version}/consents/status",
                consents.ConsentStatusView.as_view(),
                name=f"{name_prefix}consent-status",
            ),
            path(
                f"{version}/consents/<int:consent_id>/revoke",
                consents.ConsentRevokeView.as_view(),
                name=f"{name_prefix}consent-revoke",
            ),
        )
    ],
    *[
        route
        for version, views_of in VISITS.items()
        for route in (
            path(f"{version}/visits", views_of["collection"].as_view(), name=f"{version}-visits"),
            path(f"{version}/visits/<str:visit_id>", views_of["detail"].as_view(), name=f"{version}-visit"),
            path(
                f"{version}/visits/<str:visit_id>/cancel", views_of["cancel"].as_view(), name=f"{version}-visit-cancel"
            ),
        )
    ],
    *[
        route
        for version, views_of in LAB_SHARES.items()
        for route in (
            # Before lab-results/<observation_id>/shares, so that "shares" is never read as an observation id.
            path(f"{version}/lab-results/shares", views_of["collection"].as_view(), name=f"{version}-lab-shares"),
            path(
                f"{version}/lab-results/shares/<str:share_id>",
                views_of["detail"].as_view(),
                name=f"{version}-lab-share",
            ),
            path(
                f"{version}/lab-results/shares/<str:share_id>/revoke",
                views_of["revoke"].as_view(),
                name=f"{version}-lab-share-revoke",
            ),
            path(
                f"{version}/lab-results/<str:observation_id>/shares",
                views_of["create"].as_view(),
                name=f"{version}-lab-result-shares",
            ),
        )
    ],
    *[
        route
        for version, views_of in ELIGIBILITY.items()
        for route in (
            path(
                f"{version}/eligibility-checks", views_of["collection"].as_view(), name=f"{version}-eligibility-checks"
            ),
            path(
                f"{version}/eligibility-checks/<str:check_id>",
                views_of["detail"].as_view(),
                name=f"{version}-eligibility-check",
            ),
        )
    ],
    *[
        route
        for version, views_of in EVENTS.items()
        for route in (
            path(f"{version}/events", views_of["feed"].as_view(), name=f"{version}-events"),
            path(f"{version}/event-types", views_of["types"].as_view(), name=f"{version}-event-types"),
        )
    ],
    *[
        route
        for version, views_of in WEBHOOKS.items()
        for route in (
            path(f"{version}/webhooks", views_of["collection"].as_view(), name=f"{version}-webhooks"),
            path(f"{version}/webhooks/<str:subscription_id>", views_of["detail"].as_view(), name=f"{version}-webhook"),
            *(
                path(
                    f"{version}/webhooks/<str:subscription_id>/{suffix}",
                    views_of[view].as_view(),
                    name=f"{version}-webhook-{name}",
                )
                for view, suffix, name in WEBHOOK_ACTIONS
            ),
        )
    ],
]
