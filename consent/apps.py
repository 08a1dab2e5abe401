from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent"

    def ready(self):
        from consent import access_cache  # noqa: F401 - connects its invalidation signals
        from consent.services import apps_that_may_see
        from partners import events
        from partners.event_services import register_audience

        # An event about a patient reaches exactly the apps that may read that class of their data.
        register_audience(
            events.PATIENT,
            lambda event, event_type: apps_that_may_see(patient_id=event.patient_id, data_class=event_type.data_class),
        )
