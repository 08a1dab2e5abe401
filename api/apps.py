from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API"

    def ready(self):
        # Saving or deleting a Deprecation drops the cached copy the middleware reads; and the deploy
        # check of each published OpenAPI document.
        from api import deprecations, openapi  # noqa: F401
