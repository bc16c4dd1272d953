from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from dashboard.rollups import prune, tiers


class Command(BaseCommand):
    help = (
        "Delete history rollups older than their tier keeps (HISTORY_TIERS). The collector "
        "does this by itself every few minutes; this runs it now."
    )

    def handle(self, *args, **options):
        try:
            deleted = prune()
        except DatabaseError as exc:
            raise CommandError(f"cannot prune the history: {exc}")
        for step, retention in tiers():
            self.stdout.write(f"tier {step} s, kept {retention} s: {deleted[step]} buckets deleted")
        if "removed tiers" in deleted:
            self.stdout.write(f"tiers no longer configured: {deleted['removed tiers']} buckets deleted")
