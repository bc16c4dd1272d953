"""`make run`: the whole product on http://127.0.0.1:8000 from a fresh clone.

SQLite by default, the Redis at REDIS_URL (or a bundled one started here),
daphne and the metrics collector. Ctrl-C stops everything.
"""

import os
import subprocess
import sys

from deploy.supervisor import Supervisor, ensure_redis

PORT = int(os.environ.get("PORT", "8000"))


def manage(*args):
    return subprocess.run([sys.executable, "manage.py", *args], check=False).returncode


def main():
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if manage("check") != 0:
        return 1
    supervisor = Supervisor()
    try:
        ensure_redis(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), supervisor)
        if manage("migrate", "--noinput", "-v", "0") != 0:
            supervisor.stop()
            return 1
        manage("ensure_superuser")
        supervisor.daphne("daphne", PORT)
        supervisor.python("collector", "manage.py", "collect_metrics")
    except BaseException:
        supervisor.stop()
        raise
    print(f"livedash is running on http://127.0.0.1:{PORT}/  (Ctrl-C stops it)", flush=True)
    return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main())
