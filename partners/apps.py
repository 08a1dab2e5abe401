from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = "Partners"

    def ready(self):
        from partners import token_cache  # noqa: F401 - connects its invalidation signals
