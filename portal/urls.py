from django.urls import path

from portal import diagnostics, docs_views, views

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
    # Tiers
    path("tiers/", views.tiers, name="tiers"),
    path("tiers/request/", views.upgrade_request, name="upgrade-request"),
    path("tiers/requests/<int:pk>/withdraw/", views.upgrade_withdraw, name="upgrade-withdraw"),
    # Inbox
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:pk>/", views.inbox_message, name="inbox-message"),
    # Diagnostics
    path("diagnostics/", diagnostics.diagnostics, name="diagnostics"),
    # Docs (public)
    path("docs/", docs_views.index, name="docs"),
    path("docs/<str:slug>/", docs_views.page, name="docs-page"),
]
