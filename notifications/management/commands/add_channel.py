import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from notifications.models import DeliveryChannel, Level
from notifications.services import describe_error


class Command(BaseCommand):
    help = (
        "Add a delivery channel: notifications for a user, a group or everyone also go "
        "to an e-mail address, a webhook, or an apprise URL (Slack, Telegram, Discord, ntfy, ...)."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=DeliveryChannel.Kind.values, help="email, webhook or apprise")
        parser.add_argument(
            "target",
            help="the e-mail address, the webhook's http(s) URL, or the apprise URL (stored encrypted)",
        )
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--user", metavar="USERNAME", help="the channel receives what this user is sent")
        owner.add_argument("--group", metavar="NAME", help="the channel receives what this group is sent")
        owner.add_argument("--all", action="store_true", help="the channel receives what everyone is sent")
        parser.add_argument(
            "--secret", default=None, help="webhooks: the HMAC key of the signature (default: a new one)"
        )
        parser.add_argument(
            "--min-level", default=Level.INFO, choices=Level.values, help="send this level and above"
        )

    def handle(self, *args, kind, target, secret, min_level, **options):
        channel = DeliveryChannel(kind=kind, target=target, min_level=min_level, **self._owner(options))
        generated = kind == DeliveryChannel.Kind.WEBHOOK and not secret
        if kind == DeliveryChannel.Kind.WEBHOOK:
            channel.secret = secret or secrets.token_urlsafe(32)
        elif secret:
            raise CommandError("--secret is for webhooks only")
        try:
            channel.full_clean()
        except ValidationError as exc:
            raise CommandError(describe_error(exc)) from None
        channel.save()
        self.stdout.write(f"Added channel {channel.pk}: {channel} for {channel.audience_display}.")
        if generated:
            # Shown once, alone on the last line, so scripts can take it.
            self.stdout.write("Webhook secret (shown once):")
            self.stdout.write(channel.secret)

    def _owner(self, options):
        if options["all"]:
            return {}
        if options["group"] is not None:
            try:
                return {"owner_group": Group.objects.get(name=options["group"])}
            except Group.DoesNotExist:
                raise CommandError(f"unknown group {options['group']!r}") from None
        User = get_user_model()
        try:
            return {"owner_user": User.objects.get(**{User.USERNAME_FIELD: options["user"]})}
        except User.DoesNotExist:
            raise CommandError(f"unknown user {options['user']!r}") from None
