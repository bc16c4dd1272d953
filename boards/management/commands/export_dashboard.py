import json

from django.core.management.base import BaseCommand, CommandError

from boards.models import Dashboard


class Command(BaseCommand):
    help = "Print a dashboard's JSON (what `import_dashboard`, the API and DASHBOARDS_DIR files take)."

    def add_arguments(self, parser):
        parser.add_argument("uid")

    def handle(self, *args, uid, **options):
        board = Dashboard.objects.filter(uid=uid).first()
        if board is None:
            raise CommandError(f"no dashboard {uid!r}")
        self.stdout.write(json.dumps(board.export(), indent=2, ensure_ascii=False))
