"""The test identity provider as a separate OS process (tests/idp/serve.py) on a free port."""

import json
import subprocess
import sys
from pathlib import Path

from deploy.supervisor import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENT_ID = "livedash-test"
CLIENT_SECRET = "livedash-test-secret"  # noqa: S105 (the test provider's own client)
IDP_PASSWORD = "idp-password-for-tests"  # noqa: S105
CALLBACK_PATH = "/accounts/oidc/oidc/login/callback/"


class IdentityProviderProcess:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/o"
        self.users_file = self.folder / "users.json"
        self.process = None
        self.users = {}
        self.faults = {}

    def add_user(self, username, groups=(), email=None, email_verified=True):
        self.users[username] = {
            "password": IDP_PASSWORD,
            "email": email if email is not None else f"{username}@idp.example.org",
            "email_verified": email_verified,
            "groups": list(groups),
        }
        self.write()

    def set_groups(self, username, groups):
        self.users[username]["groups"] = list(groups)
        self.write()

    def set_faults(self, **faults):
        """The next ID tokens' faults: nonce=TEXT, aud=TEXT, expired=True; none: correct."""
        self.faults = faults
        self.write()

    def write(self):
        self.users_file.write_text(json.dumps({"users": self.users, "faults": self.faults}))

    def start(self, *site_urls):
        """Serve, accepting the callback of each livedash base URL (http://host:port)."""
        self.write()
        redirects = [arg for url in site_urls for arg in ("--redirect-uri", url + CALLBACK_PATH)]
        log = open(self.folder / "idp.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.idp.serve",
                "--port",
                str(self.port),
                "--issuer",
                self.issuer,
                "--users",
                str(self.users_file),
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                CLIENT_SECRET,
                "--data-dir",
                str(self.folder),
                *redirects,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, process=self.process, timeout=60)
        return self

    def livedash_env(self, **extra):
        """The environment a livedash process needs to offer this provider."""
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_PROVIDER_NAME": "Test IdP",
            **extra,
        }

    def log(self):
        path = self.folder / "idp.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
