"""`make run`: the whole product on http://127.0.0.1:8000 from a fresh clone.

SQLite by default, the Redis at REDIS_URL (or a bundled one started and supervised
here), a web worker (deploy/worker.py) and the metrics collector. Ctrl-C stops everything.

What it runs with is written to .env (git-ignored; ENV_FILE names another file),
which the settings read, so `python manage.py ...` in a second terminal reaches the
same database and Redis.
"""

import os
import shlex
import sys
from pathlib import Path

from deploy.supervisor import ROOT, Supervisor, manage, prepare_services

PORT = int(os.environ.get("PORT", "8000"))

ENV_MARKER = "# Written by `make run`"
ENV_HEADER = f"""{ENV_MARKER} each time it starts: the setup it runs with, which the settings
# read, so commands in another terminal share it (the environment wins over it).
# Change the environment `make run` starts in, not this file.
"""
# Settings a command must share with the running product, written when set.
SHARED = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_PREFIX",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "GRIP_URL",
    "METRICS_RETENTION_HOURS",
    "LOG_LEVEL",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "DEFAULT_FROM_EMAIL",
)


def env_file():
    return Path(os.environ.get("ENV_FILE", "").strip() or ROOT / ".env")


def write_env_file(path):
    """Write the shared settings to path, unless a .env that `make run` did not write
    is there (a compose .env with its secrets, say): that one is left alone."""
    if path.exists() and not path.read_text().startswith(ENV_MARKER):
        print(f"{path.name} was not written by make run; leaving it as it is", flush=True)
        return False
    lines = [f"{name}={shlex.quote(os.environ[name])}" for name in SHARED if os.environ.get(name)]
    path.write_text(ENV_HEADER + "\n".join(lines) + "\n")
    return True


def main():
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # The settings' own defaults, spelled out so that .env names them too.
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'db.sqlite3'}")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ.setdefault("REDIS_PREFIX", "livedash")
    write_env_file(env_file())
    if manage("check") != 0:
        return 1
    supervisor = Supervisor()
    try:
        if not prepare_services(supervisor):
            supervisor.stop()
            return 1
        supervisor.worker("web", PORT)
        supervisor.python("collector", "manage.py", "collect_metrics")
    except BaseException:
        supervisor.stop()
        raise
    print(f"livedash is running on http://127.0.0.1:{PORT}/  (Ctrl-C stops it)", flush=True)
    return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main())
