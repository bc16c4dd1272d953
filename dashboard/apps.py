from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self):
        # checks registers the deploy checks on import.
        from dashboard import checks, revocation  # noqa: F401

        revocation.connect_signals()
