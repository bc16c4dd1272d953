from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken


class Command(BaseCommand):
    help = "Revoke an API token: every worker refuses it from the moment this command returns."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the token's name")

    def handle(self, *args, name, **options):
        try:
            token = ApiToken.objects.get(name=name)
        except ApiToken.DoesNotExist:
            raise CommandError(f"no API token named {name!r}")
        if token.revoked:
            self.stdout.write(f"API token {name!r} was already revoked.")
            return
        # Workers read the token's row on every request (no cache), so the commit
        # below is all it takes for every one of them to refuse it.
        token.revoke()
        self.stdout.write(f"Revoked API token {name!r}.")
