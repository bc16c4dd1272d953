"""`make run`: the whole product on http://127.0.0.1:8000 from a fresh clone.

SQLite by default, the Redis at REDIS_URL (or a bundled one started here),
a web worker (deploy/worker.py) and the metrics collector. Ctrl-C stops everything.
"""

import os
import sys

from deploy.supervisor import Supervisor, manage, prepare_services

PORT = int(os.environ.get("PORT", "8000"))


def main():
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
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
