from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken


class Command(BaseCommand):
    help = (
        "Create an API token. The token is printed once, alone on the last line of "
        "stdout; only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="a unique name, e.g. the service that will use it")
        parser.add_argument(
            "--metrics",
            nargs="+",
            default=[],
            metavar="PATTERN",
            help="shell-style patterns of the metric names it may push ('*' for all)",
        )
        parser.add_argument("--notify", action="store_true", help="may send notifications")
        parser.add_argument("--scrape", action="store_true", help="may read /metrics")
        parser.add_argument("--read", action="store_true", help="may read the series and label values")
        parser.add_argument(
            "--dashboards", action="store_true", help="may read, create, change and delete dashboards"
        )
        parser.add_argument(
            "--enroll",
            action="store_true",
            help="may enroll host agents, each receiving its own token for its own host label",
        )

    def handle(self, *args, name, metrics, notify, scrape, read, dashboards, enroll, **options):
        if not name.strip():
            raise CommandError("NAME must not be empty")
        if any(not pattern.strip() for pattern in metrics):
            raise CommandError("--metrics patterns must not be empty")
        if not (metrics or notify or scrape or read or dashboards or enroll):
            raise CommandError(
                "give the token at least one scope: "
                "--metrics PATTERN, --notify, --scrape, --read, --dashboards or --enroll"
            )
        try:
            token, raw = ApiToken.create(
                name,
                metric_patterns=metrics,
                notify=notify,
                scrape=scrape,
                read=read,
                dashboards=dashboards,
                enroll=enroll,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
        except ValueError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"Created API token {token.name!r} with scopes: {', '.join(token.scopes)}.")
        self.stdout.write("It is shown only this once; store it now:")
        self.stdout.write(raw)
