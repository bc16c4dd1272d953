import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create a superuser from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD if no user exists; "
        "otherwise say how to create one. Never uses a default password."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.exists():
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if not username or not password:
            self.stdout.write(
                "No user exists yet. Create one to sign in:\n"
                "  .venv/bin/python manage.py createsuperuser\n"
                "or set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD and start again."
            )
            return
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        user = User(**{User.USERNAME_FIELD: username}, email=email)
        try:
            # The same validators (AUTH_PASSWORD_VALIDATORS) as every other password.
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD: " + " ".join(exc.messages)) from None
        User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"Created superuser {username!r}.")
