"""`/hosts/` through Django's test client: who may see it, the hosts it lists (from the
series index and enrolled hosts) with their values and status, filtering and sorting,
and revoking an enrolled host (its token refused, audited, the host gone from the page)."""

import json
import time

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from api.models import ApiToken
from audit.models import AuditEntry
from dashboard.live import publish_metrics
from hosts import liveness


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def push(host, ts=None, **values):
    ts = time.time() if ts is None else ts
    publish_metrics([(name, value, ts, {"host": host}) for name, value in values.items()])


def write_as(raw, host):
    """What the host's agent does: line protocol to /api/v2/write with its token."""
    return Client().post(
        "/api/v2/write?precision=s",
        data=f"cpu,host={host} value=5 {int(time.time())}",
        content_type="text/plain",
        headers={"Authorization": f"Bearer {raw}"},
    )


def names(response):
    assert response.status_code == 200, response.content[:300]
    return [row["name"] for row in response.context["rows"]]


@pytest.fixture
def fleet(redis_url, alice):
    """web1 busy and up, db1 quiet for a minute (its interval 5 s: down), and an enrolled
    host that never pushed."""
    now = time.time()
    push("web1", cpu=91.5, memory=40.0, disk=70.0, net_rx=2048.0, net_tx=1024.0)
    push("db1", ts=now - 60, cpu=12.0, memory=85.0, disk=30.0, net_rx=10.0, net_tx=10.0)
    # What the collector's tracker says of their pace.
    from dashboard.redis import get_sync_client

    get_sync_client().hset(
        liveness.seen_key(),
        mapping={
            "web1": json.dumps({"heard": now, "interval": 5.0, "deadline": now + 15}),
            "db1": json.dumps({"heard": now - 60, "interval": 5.0, "deadline": now - 45}),
        },
    )
    # Made down by hand: the index says when db1 was last pushed (just now, by this test).
    from dashboard import series, seriesindex

    for name in ("cpu", "memory", "disk", "net_rx", "net_tx"):
        store = series.storage_key(series.format_id(name, {"host": "db1"}))
        get_sync_client().zadd(seriesindex.live_key(), {store: now - 60})
    token, raw = ApiToken.enroll_host("edge7")
    return {"token": token, "raw": raw}


def test_anonymous_users_are_sent_to_log_in(client, redis_url):
    response = client.get("/hosts/")
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=/hosts/")


def test_it_needs_the_permission_to_view_metrics(charlie, redis_url):
    assert as_user(charlie).get("/hosts/").status_code == 403


def test_it_lists_every_host_with_its_values_and_status(alice, fleet):
    response = as_user(alice).get("/hosts/")
    rows = {row["name"]: row for row in response.context["rows"]}
    assert set(rows) == {"web1", "db1", "edge7"}
    assert rows["web1"]["status"] == "up"
    assert rows["web1"]["values"] == {
        "cpu": 91.5,
        "memory": 40.0,
        "disk": 70.0,
        "net_rx": 2048.0,
        "net_tx": 1024.0,
    }
    assert rows["web1"]["interval"] == 5.0
    assert rows["db1"]["status"] == "down"
    assert rows["edge7"] == {**rows["edge7"], "status": "never", "enrolled": True, "last_seen": None}
    html = response.content.decode()
    # Each host links to the host dashboard with its variable set.
    assert 'href="/d/host-overview/?var-host=web1"' in html
    assert "91.5 %" in html
    # The page config the script reads carries the same rows.
    assert {row["name"] for row in response.context["page_config"]["hosts"]["rows"]} == set(rows)


def test_the_top_bar_links_to_the_hosts_page(alice, redis_url):
    from boards import store
    from boards.tests.documents import board

    store.save(board(uid="shared", visibility="everyone"), author=store.Author())
    assert 'href="/hosts/"' in as_user(alice).get("/d/shared/").content.decode()


def test_filter_and_sort_are_query_parameters(alice, fleet):
    alices = as_user(alice)
    assert names(alices.get("/hosts/")) == ["db1", "edge7", "web1"]
    assert names(alices.get("/hosts/?sort=-name")) == ["web1", "edge7", "db1"]
    assert names(alices.get("/hosts/?sort=-cpu")) == ["web1", "db1", "edge7"]
    assert names(alices.get("/hosts/?sort=cpu")) == ["db1", "web1", "edge7"]
    assert names(alices.get("/hosts/?sort=memory")) == ["web1", "db1", "edge7"]
    assert names(alices.get("/hosts/?sort=status")) == ["db1", "edge7", "web1"]
    assert names(alices.get("/hosts/?status=down")) == ["db1"]
    assert names(alices.get("/hosts/?q=WEB")) == ["web1"]
    assert names(alices.get("/hosts/?q=nothing")) == []
    answer = alices.get("/hosts/?sort=-cpu", HTTP_ACCEPT="application/json").json()
    assert [row["name"] for row in answer["hosts"]] == ["web1", "db1", "edge7"]


def test_bad_sort_or_status_is_a_clear_error(alice, fleet):
    response = as_user(alice).get("/hosts/?sort=colour")
    assert response.status_code == 400
    assert "colour" in response.content.decode() and "cpu" in response.content.decode()
    assert as_user(alice).get("/hosts/?status=sideways").status_code == 400


def test_only_those_who_manage_tokens_may_revoke(alice, admin_user, fleet):
    assert "Revoke edge7" not in as_user(alice).get("/hosts/").content.decode()
    response = as_user(alice).post("/hosts/revoke/", {"host": "edge7"})
    assert response.status_code == 403
    assert ApiToken.lookup(fleet["raw"]) is not None
    assert "Revoke edge7" in as_user(admin_user).get("/hosts/").content.decode()


def test_revoking_a_host_stops_its_token_audits_and_drops_it(alice, fleet):
    alice.user_permissions.add(Permission.objects.get(codename="change_apitoken"))
    alices = as_user(alice)
    assert write_as(fleet["raw"], "edge7").status_code == 204
    response = alices.post("/hosts/revoke/", {"host": "edge7"})
    assert response.status_code == 302 and response.url == "/hosts/"
    # Refused from now on (the workers' half-second memory of tokens forgotten here).
    from api import models as api_models

    api_models.forget_found_tokens()
    assert write_as(fleet["raw"], "edge7").status_code == 401
    entry = AuditEntry.objects.get(action="host.revoke")
    assert (entry.actor, entry.target, entry.after) == ("alice", "edge7", {"tokens": [fleet["token"].name]})
    assert "edge7" in liveness.forgotten()
    assert "edge7" not in names(alices.get("/hosts/"))
    # Not enrolled (web1 pushes with some other token): nothing to revoke.
    assert alices.post("/hosts/revoke/", {"host": "web1"}).status_code == 400


def test_a_revoked_host_that_enrolls_again_is_listed_again(alice, fleet):
    # Revoked half a minute ago (db1 last pushed a minute ago): past the grace of its last push.
    liveness.forget("db1", now=time.time() - 30)
    assert "db1" not in names(as_user(alice).get("/hosts/"))
    push("db1", cpu=5.0)
    assert "db1" in names(as_user(alice).get("/hosts/"))


def test_the_collectors_host_is_paused_not_down_while_sampling_is_paused(alice, fleet):
    from asgiref.sync import async_to_sync

    from dashboard.collector import sampling
    from dashboard.collector.collector import announce_host

    announce_host("db1")
    async_to_sync(sampling.aset_paused)(True)
    response = as_user(alice).get("/hosts/")
    assert {row["name"]: row["status"] for row in response.context["rows"]}["db1"] == "paused"
    assert names(as_user(alice).get("/hosts/?status=paused")) == ["db1"]
    async_to_sync(sampling.aset_paused)(False)
    assert names(as_user(alice).get("/hosts/?status=down")) == ["db1"]
