"""Run the test identity provider: `python -m tests.idp.serve --port P --issuer URL
--users FILE --client-id ID --client-secret S --redirect-uri URI --data-dir DIR`.

Migrates its own SQLite database in DIR, signs in the users of FILE (validator.py says
its shape) and has the one client, then serves with Django's development server until
stopped. Used by the tests (tests/idp/fixtures.py) and the compose `oidc` profile."""

import argparse
import os
import sys
from pathlib import Path


def private_key_pem(data_dir):
    """An RSA key kept in the data folder, so a restarted provider signs with the same one."""
    path = Path(data_dir) / "idp-key.pem"
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path.read_text()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--users", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True, action="append")
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args(argv)

    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.idp.settings",
        IDP_DATABASE=str(Path(args.data_dir) / "idp.sqlite3"),
        IDP_ISSUER=args.issuer,
        IDP_USERS_FILE=str(Path(args.users).resolve()),
        IDP_RSA_PRIVATE_KEY=private_key_pem(args.data_dir),
    )
    import django

    django.setup()
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    Application.objects.filter(client_id=args.client_id).delete()
    Application.objects.create(
        name="livedash",
        client_id=args.client_id,
        client_secret=args.client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(args.redirect_uri),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    print(f"test identity provider at {args.issuer}", flush=True)
    call_command("runserver", f"{args.host}:{args.port}", use_reloader=False, use_threading=True)


if __name__ == "__main__":
    sys.exit(main())
