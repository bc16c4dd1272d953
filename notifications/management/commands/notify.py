from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from notifications.services import notify


class Command(BaseCommand):
    help = "Send a notification to one user, one group, or everyone (stored, then pushed live)."

    def add_arguments(self, parser):
        audience = parser.add_mutually_exclusive_group(required=True)
        audience.add_argument("--user", metavar="USERNAME", help="send to this user")
        audience.add_argument("--group", metavar="NAME", help="send to every member of this group")
        audience.add_argument("--all", action="store_true", help="send to everyone")
        parser.add_argument("--level", default="info", help="info (default), success, warning or error")
        parser.add_argument("--body", default="", help="the text under the title")
        parser.add_argument("--link", default=None, help="an http(s) URL or a path on this site")
        parser.add_argument("title", help="the title, up to 120 characters")

    def handle(self, *args, **options):
        to = self._audience(options)
        try:
            notification = notify(
                to, options["title"], body=options["body"], level=options["level"], link=options["link"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Sent notification {notification.pk} to {self._describe(notification)}.")

    def _audience(self, options):
        if options["all"]:
            return None
        if options["group"] is not None:
            try:
                return Group.objects.get(name=options["group"])
            except Group.DoesNotExist:
                raise CommandError(f"unknown group {options['group']!r}") from None
        return options["user"]

    def _describe(self, notification):
        if notification.recipient_user_id:
            return notification.recipient_user.get_username()
        if notification.recipient_group_id:
            return f"group {notification.recipient_group.name}"
        return "everyone"
