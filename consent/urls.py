"""Patient-facing consent pages under /me/."""

app_name = "consent"

urlpatterns = []
