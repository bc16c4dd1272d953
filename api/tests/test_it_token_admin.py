import hashlib
import re

import pytest

from api.models import ApiToken


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_adding_a_token_in_the_admin_shows_it_once_and_stores_its_hash(admin_client):
    response = admin_client.post(
        "/admin/api/apitoken/add/",
        {"name": "ci", "metric_patterns": '["build_*"]', "notify": "on"},
    )
    assert response.status_code == 200
    raw = re.search(r'<code id="api-token">([^<]+)</code>', response.content.decode()).group(1)
    token = ApiToken.objects.get(name="ci")
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.metric_patterns == ["build_*"] and token.notify and not token.scrape
    # Nowhere else afterwards: the change page shows the prefix only.
    page = admin_client.get(f"/admin/api/apitoken/{token.pk}/change/").content.decode()
    assert raw not in page
    assert token.prefix in page


def test_the_admin_refuses_patterns_that_are_not_a_list_of_strings(admin_client):
    response = admin_client.post("/admin/api/apitoken/add/", {"name": "bad", "metric_patterns": '"app_*"'})
    assert response.status_code == 200
    assert "list of non-empty strings" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_admin_revokes_tokens(admin_client):
    token, _raw = ApiToken.create("old", notify=True)
    response = admin_client.post(
        "/admin/api/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked and token.revoked_at is not None


def test_staff_without_permission_cannot_see_tokens(client, staff):
    client.force_login(staff)
    assert client.get("/admin/api/apitoken/").status_code == 403
