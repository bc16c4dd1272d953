"""`make static` runs with DEBUG=1; a DEBUG=0 start on what it built must serve pages."""

import re

import httpx
import pytest

from conftest import ROOT

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "test-secret-key-for-a-production-shaped-worker-0123456789",
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "0",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
}


@pytest.mark.slow
def test_static_built_with_debug_on_serves_a_debug_off_worker(manage, daphne_workers):
    built = manage("collectstatic", "--noinput", "-v", "0", env={"DEBUG": "1"})
    assert built.returncode == 0, built.stderr
    assert (ROOT / "staticfiles" / "staticfiles.json").exists(), "the manifest production reads"
    (base_url,) = daphne_workers(1, env=PRODUCTION)
    with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
        page = client.get("/accounts/login/")
        assert page.status_code == 200, page.text[:300]
        stylesheet = re.search(r'href="(/static/css/livedash\.[0-9a-f]+\.css)"', page.text)
        assert stylesheet, "production pages name the hashed files"
        assert client.get(stylesheet.group(1)).status_code == 200
