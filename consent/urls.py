"""Patient-facing consent pages under /me/."""

from django.urls import path

from consent import views

app_name = "consent"

urlpatterns = [
    path("apps/", views.my_apps, name="my-apps"),
    path("apps/<int:grant_id>/revoke/", views.revoke, name="revoke"),
]
