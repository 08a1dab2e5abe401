from django.urls import path
from django.views.generic import RedirectView

from portal import certification_views, changelog_views, diagnostics, docs_views, status, views, webhook_views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    # Organization and members
    path("org/", views.organization, name="organization"),
    path("org/new/", views.organization_create, name="organization-create"),
    path("org/switch/<int:pk>/", views.organization_switch, name="organization-switch"),
    path("org/invite/", views.invite, name="invite"),
    path("org/invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path("org/members/<int:pk>/role/", views.member_change_role, name="member-role"),
    path("org/members/<int:pk>/remove/", views.member_remove, name="member-remove"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    # Apps
    path("apps/", views.apps, name="apps"),
    path("apps/new/", views.app_create, name="app-create"),
    path("apps/<int:pk>/", views.app_detail, name="app-detail"),
    path("apps/<int:pk>/edit/", views.app_edit, name="app-edit"),
    path("apps/<int:pk>/rotate-secret/", views.app_rotate_secret, name="app-rotate-secret"),
    path("apps/<int:pk>/keys/", views.app_keys, name="app-keys"),
    path("apps/<int:pk>/access-log/", views.app_access_log, name="app-access-log"),
    path("apps/<int:pk>/usage/", views.app_usage, name="app-usage"),
    path("apps/<int:pk>/certification/", certification_views.certification, name="app-certification"),
    path(
        "apps/<int:pk>/certification/runs/",
        certification_views.certification_start,
        name="app-certification-start",
    ),
    path("apps/<int:pk>/changelog/", changelog_views.app_changelog, name="app-changelog"),
    path(
        "apps/<int:pk>/changelog/rotate-feed/",
        changelog_views.app_changelog_feed_rotate,
        name="app-changelog-feed-rotate",
    ),
    # Webhooks
    path("apps/<int:pk>/webhooks/", webhook_views.webhooks, name="webhooks"),
    path("apps/<int:pk>/webhooks/new/", webhook_views.webhook_create, name="webhook-create"),
    path("apps/<int:pk>/webhooks/<str:subscription_id>/", webhook_views.webhook_detail, name="webhook-detail"),
    path("apps/<int:pk>/webhooks/<str:subscription_id>/edit/", webhook_views.webhook_edit, name="webhook-edit"),
    path("apps/<int:pk>/webhooks/<str:subscription_id>/enable/", webhook_views.webhook_enable, name="webhook-enable"),
    path(
        "apps/<int:pk>/webhooks/<str:subscription_id>/disable/", webhook_views.webhook_disable, name="webhook-disable"
    ),
    path("apps/<int:pk>/webhooks/<str:subscription_id>/delete/", webhook_views.webhook_delete, name="webhook-delete"),
    path(
        "apps/<int:pk>/webhooks/<str:subscription_id>/rotate-secret/",
        webhook_views.webhook_rotate_secret,
        name="webhook-rotate-secret",
    ),
    path("apps/<int:pk>/webhooks/<str:subscription_id>/test/", webhook_views.webhook_test, name="webhook-test"),
    path("apps/<int:pk>/webhooks/<str:subscription_id>/replay/", webhook_views.webhook_replay, name="webhook-replay"),
    path(
        "apps/<int:pk>/webhooks/<str:subscription_id>/deliveries/<int:delivery_id>/redeliver/",
        webhook_views.webhook_redeliver,
        name="webhook-redeliver",
    ),
    # Tiers
    path("tiers/", views.tiers, name="tiers"),
    path("tiers/request/", views.upgrade_request, name="upgrade-request"),
    path("tiers/requests/<int:pk>/withdraw/", views.upgrade_withdraw, name="upgrade-withdraw"),
    # Inbox
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:pk>/", views.inbox_message, name="inbox-message"),
    # Diagnostics and service status
    path("diagnostics/", diagnostics.diagnostics, name="diagnostics"),
    path("diagnostics/denials/", diagnostics.denials, name="diagnostics-denials"),
    path("status/", status.status, name="status"),
    # Docs (public)
    path("docs/", docs_views.index, name="docs"),
    path("docs/errors/<slug:code>/", docs_views.error_page, name="docs-error"),
    # Before docs/<slug>/, which would take "search" for a page's name.
    path("docs/search/", docs_views.search, name="docs-search"),
    path("deprecations/", docs_views.deprecations, name="deprecations"),
    path("changelog/", changelog_views.changelog_page, name="changelog"),
    path("changelog/feed.xml", changelog_views.changelog_feed, name="changelog-feed"),
    path("changelog/apps/<str:token>/feed.xml", changelog_views.changelog_app_feed, name="changelog-app-feed"),
    # The changelog was a Markdown page until it became records an admin publishes.
    path("docs/changelog/", RedirectView.as_view(pattern_name="portal:changelog", permanent=True)),
    path("docs/<str:slug>/", docs_views.page, name="docs-page"),
]
