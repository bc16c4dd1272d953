from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from boards import provisioning


class Command(BaseCommand):
    help = (
        "Provision the dashboards in DASHBOARDS_DIR (JSON or YAML files): new and changed files are "
        "loaded, dashboards whose file is gone are removed. The collector does the same at start and "
        "whenever a file changes. Exits non-zero if a file could not be loaded."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dir", default=None, help="another folder than DASHBOARDS_DIR")
        parser.add_argument("--force", action="store_true", help="reread every file, changed or not")

    def handle(self, *args, dir=None, force=False, **options):
        directory = dir or settings.DASHBOARDS_DIR
        outcome = provisioning.sync(directory, force=force)
        if outcome.missing_directory:
            raise CommandError(f"DASHBOARDS_DIR {directory} is not a folder; nothing was provisioned")
        for name, uid in outcome.loaded:
            self.stdout.write(f"provisioned {uid} from {name}")
        for name, uid in outcome.unchanged:
            self.stdout.write(f"unchanged {uid} ({name})")
        for name, uid in outcome.removed:
            self.stdout.write(f"removed {uid}: {name} is gone")
        if outcome.failed:
            raise CommandError("; ".join(f"{name}: {message}" for name, message in outcome.failed))
