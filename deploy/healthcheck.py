"""Container healthcheck: exit 0 when this worker's /healthz answers 200.

The request has to carry a Host that ALLOWED_HOSTS accepts, or Django answers
400 and a healthy worker looks sick; so it picks one from the same setting.
"""

import os
import sys
import urllib.error
import urllib.request

PORT = int(os.environ.get("PORT", "8000"))


def allowed_host():
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    if not hosts or "*" in hosts or "localhost" in hosts:
        return "localhost"
    # ".example.org" allows example.org and its subdomains.
    return hosts[0].lstrip(".")


def main():
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}/healthz", headers={"Host": allowed_host()})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (fixed local URL)
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthz: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
