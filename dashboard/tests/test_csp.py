"""Every page carries an enforced Content-Security-Policy (django-csp), and a real
browser finds nothing on the pages that it blocks."""

import pytest

from conftest import PASSWORD


def policy_of(response):
    return {
        directive.split()[0]: directive.split()[1:]
        for directive in response["Content-Security-Policy"].split(";")
        if directive.strip()
    }


@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/admin/", "/healthz"])
def test_every_page_carries_the_strict_policy(client, admin_user, path):
    if path != "/accounts/login/":
        client.force_login(admin_user)
    response = client.get(path)
    assert response.status_code == 200
    assert "Content-Security-Policy-Report-Only" not in response
    policy = policy_of(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "script-src" not in policy  # scripts fall back to default-src 'self'


def test_the_pages_have_no_inline_script_or_style(client, admin_user):
    import re

    client.force_login(admin_user)
    for path in ("/", "/accounts/login/"):
        html = client.get(path).content.decode()
        scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
        # The page's config is a JSON data block, which the browser never runs.
        assert all('type="application/json"' in attributes for attributes in scripts), (path, scripts)
        assert " style=" not in html, path
        assert "<style" not in html, path
        assert 'href="data:' not in html, path


@pytest.mark.slow
def test_a_browser_reports_no_violation_on_the_pages(daphne_workers, admin_user, alice):
    from tests.browser import headless_chromium

    (base_url,) = daphne_workers(1)
    paths = [
        "/",
        "/admin/",
        "/admin/auth/user/",
        f"/admin/auth/user/{alice.pk}/change/",
        "/admin/auth/group/add/",
    ]
    record = (
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    with headless_chromium() as browser:
        page = browser.new_page()
        page.add_init_script(record)
        console = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(base_url + "/accounts/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base_url + "/")
        violations = {}
        for path in paths:
            page.goto(base_url + path)
            page.wait_for_load_state("networkidle")
            found = page.evaluate("window.__violations")
            if found:
                violations[path] = found
    assert violations == {}
    assert not [line for line in console if "Content Security Policy" in line], console
