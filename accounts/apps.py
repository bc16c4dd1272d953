from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from accounts import roles, signals

        signals.connect_signals()
        # A permission that appears later (a new app's models) reaches its roles too.
        post_migrate.connect(roles.on_post_migrate, dispatch_uid="livedash.roles.post_migrate")
