from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from alerts.provisioning import ProvisioningError, provision


class Command(BaseCommand):
    help = "Provision the alert rules in ALERT_RULES_DIR (or DIRECTORY): JSON or YAML files."

    def add_arguments(self, parser):
        parser.add_argument("directory", nargs="?", default=None, help="default: ALERT_RULES_DIR")

    def handle(self, *args, directory=None, **options):
        directory = directory or settings.ALERT_RULES_DIR
        if not directory:
            raise CommandError("set ALERT_RULES_DIR or name the directory")
        try:
            outcome = provision(directory)
        except ProvisioningError as exc:
            raise CommandError(f"some alert rules could not be provisioned:\n{exc}") from None
        except OSError as exc:
            raise CommandError(f"cannot read {directory}: {exc}") from None
        self.stdout.write(
            f"Provisioned {len(outcome['applied'])} alert rules; deleted {len(outcome['deleted'])}."
        )
