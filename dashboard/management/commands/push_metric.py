from django.core.management.base import BaseCommand, CommandError

from dashboard.live import publish_metric


def number(text):
    """An int when the text is one, else a float; publish_metric judges the rest."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise CommandError(f"VALUE must be a number, got {text!r}")


class Command(BaseCommand):
    help = "Publish one value of a custom metric to every open dashboard."

    def add_arguments(self, parser):
        parser.add_argument("name", help="metric key: a slug of at most 64 characters")
        parser.add_argument("value", help="a finite number")
        parser.add_argument("--ts", type=float, default=None, help="unix timestamp (default: now)")

    def handle(self, *args, name, value, ts, **options):
        try:
            data = publish_metric(name, number(value), ts=ts)
        except ValueError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"published {data['name']}={data['value']}")
