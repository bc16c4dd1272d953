from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self):
        # signals pushes metric-config when a rule is saved or deleted.
        from alerts import signals  # noqa: F401
