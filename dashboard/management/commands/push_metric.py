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


def parse_label(text):
    """`k=v` as (k, v); publish_metric judges the name and the value."""
    name, sep, value = text.partition("=")
    if not sep:
        raise CommandError(f"--label must be NAME=VALUE, got {text!r}")
    return name, value


class Command(BaseCommand):
    help = "Publish one value of a custom metric to every open dashboard."

    def add_arguments(self, parser):
        parser.add_argument("name", help="metric key: a slug of at most 64 characters")
        parser.add_argument("value", help="a finite number")
        parser.add_argument("--ts", type=float, default=None, help="unix timestamp (default: now)")
        parser.add_argument(
            "--label",
            dest="labels",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a label of the series (repeatable), e.g. --label host=web1",
        )

    def handle(self, *args, name, value, ts, labels, **options):
        pairs = [parse_label(text) for text in labels]
        labels = dict(pairs)
        if len(labels) < len(pairs):
            raise CommandError("--label: each label name at most once")
        try:
            data = publish_metric(name, number(value), ts=ts, labels=labels)
        except ValueError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"published {data['series']}={data['value']}")
