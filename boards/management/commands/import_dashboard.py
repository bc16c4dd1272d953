import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.context import current_actor
from boards import provisioning, spec, store


class Command(BaseCommand):
    help = (
        "Load a dashboard from a JSON or YAML file ('-' reads JSON from stdin). A dashboard with its "
        "uid is replaced by a new version; a provisioned one is refused (change its file instead)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--uid", default=None, help="import under this uid instead of the file's")
        parser.add_argument("--message", default="", help="the version's message")

    def handle(self, *args, file, uid=None, message="", **options):
        try:
            document = json.loads(sys.stdin.read()) if file == "-" else provisioning.read_document(Path(file))
        except (provisioning.FileError, ValueError) as exc:
            raise CommandError(f"{file}: {exc}") from None
        if isinstance(document, dict) and uid is not None:
            document = {**document, "uid": uid}
        author = store.Author(name=current_actor().username)
        try:
            board = store.save(
                document,
                author=author,
                message=message or f"imported from {Path(file).name}",
                action=store.IMPORT,
                check_version=False,
            )
        except spec.InvalidDashboard as exc:
            raise CommandError(f"{file}: {exc}") from None
        except (store.Provisioned, store.Conflict) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"imported {board.uid} as version {board.version}")
