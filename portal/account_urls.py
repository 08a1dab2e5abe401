"""Account pages under /accounts/: sign-up, email confirmation, and Django's auth views (login,
logout, password reset and change) with the portal's templates. URL names carry no namespace."""

from django.urls import include, path

from portal import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    # Before django.contrib.auth.urls, so these rate-limited views answer their paths.
    path("login/", views.login_view, name="login"),
    path("password_reset/", views.password_reset_view, name="password_reset"),
    path("verify/resend/", views.verify_email_resend, name="verify-email-resend"),
    path("verify/<str:token>/", views.verify_email, name="verify-email"),
    path("", include("django.contrib.auth.urls")),
]
