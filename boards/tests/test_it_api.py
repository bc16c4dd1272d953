"""The dashboards API through Django's test client: tokens, sessions, versions, visibility."""

import json
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from api.models import ApiToken
from audit.models import AuditEntry
from boards.models import Dashboard, DashboardVersion
from boards.tests.documents import board

URL = "/api/v1/dashboards"


@pytest.fixture
def token(db):
    return ApiToken.create("ci", dashboards=True)[1]


def put(client, document, uid=None, **headers):
    uid = uid or document["uid"]
    return client.put(f"{URL}/{uid}", json.dumps(document), content_type="application/json", **headers)


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def test_put_creates_then_replaces_and_get_answers_the_same_json(client, token):
    document = board()
    created = put(client, document, **bearer(token))
    assert created.status_code == 200, created.content
    assert created.json() == {**document, "version": 1}
    assert list(created.json()) == [
        "uid",
        "title",
        "description",
        "tags",
        "version",
        "window",
        "variables",
        "visibility",
        "panels",
    ]
    got = client.get(f"{URL}/checkout", **bearer(token))
    assert got.json() == created.json()
    changed = {**got.json(), "title": "Checkout v2"}
    replaced = put(client, changed, **bearer(token))
    assert replaced.status_code == 200
    assert replaced.json() == {**changed, "version": 2}
    assert [v.version for v in DashboardVersion.objects.all()] == [2, 1]
    assert DashboardVersion.objects.get(version=1).document == {**document, "version": 1}


def test_a_stale_version_answers_409_and_changes_nothing(client, token):
    put(client, board(), **bearer(token))
    put(client, {**board(title="second"), "version": 1}, **bearer(token))
    audits, versions = AuditEntry.objects.count(), DashboardVersion.objects.count()
    stale = put(client, {**board(title="lost update"), "version": 1}, **bearer(token))
    assert stale.status_code == 409
    assert stale.json()["error"] == "conflict"
    assert "stored version is 2" in stale.json()["detail"]
    assert client.get(f"{URL}/checkout", **bearer(token)).json()["title"] == "second"
    assert (AuditEntry.objects.count(), DashboardVersion.objects.count()) == (audits, versions)
    # Creating over an existing dashboard (no version) conflicts too, as does a version for nothing.
    assert put(client, board(), **bearer(token)).json()["error"] == "conflict"
    assert put(client, board(uid="other", version=4), **bearer(token)).json()["error"] == "conflict"
    assert not Dashboard.objects.filter(uid="other").exists()


def test_an_invalid_dashboard_answers_400_naming_panel_and_field(client, token):
    document = board()
    document["panels"][2]["grid"]["w"] = 13
    answer = put(client, document, **bearer(token))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid"
    assert answer.json()["detail"].startswith("panels[2].grid.w: ")
    document = board()
    document["panels"][1]["series"] = ['cpu{host=~"(a"}']
    assert put(client, document, **bearer(token)).json()["detail"].startswith("panels[1].series[0]: ")
    assert put(client, board(uid="x"), uid="y", **bearer(token)).json()["detail"].startswith("uid: ")
    bad_json = client.put(f"{URL}/x", "{", content_type="application/json", **bearer(token))
    assert (bad_json.status_code, bad_json.json()["error"]) == (400, "invalid")
    assert not Dashboard.objects.exists()


def test_without_a_credential_401_and_a_token_without_the_scope_403(client, db):
    assert client.get(URL).status_code == 401
    assert client.get(URL).json()["error"] == "unauthenticated"
    _row, raw = ApiToken.create("pusher", metric_patterns=["*"], notify=True, scrape=True)
    refused = client.get(URL, **bearer(raw))
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert put(client, board(), **bearer(raw)).status_code == 403


def test_a_token_makes_dashboards_for_its_creator_or_for_no_one(client, alice, bob, token):
    row, raw = ApiToken.create("alices", dashboards=True)
    ApiToken.objects.filter(pk=row.pk).update(created_by=alice)
    put(client, board(uid="mine"), **bearer(raw))
    put(client, board(uid="nobodys"), **bearer(token))
    assert Dashboard.objects.get(uid="mine").owner == alice
    assert Dashboard.objects.get(uid="nobodys").owner is None
    # Private and owned by no one: only a token or the change permission reach it.
    assert as_user(bob).get(f"{URL}/nobodys").status_code == 404
    assert as_user(alice).get(f"{URL}/mine").status_code == 200


def test_visibility_decides_who_sees_and_owners_and_change_permission_edit(
    alice, bob, charlie, staff, admin_user
):
    alice_client = as_user(alice)
    assert put(alice_client, board(uid="private")).status_code == 200
    assert put(alice_client, board(uid="everyone", visibility="everyone")).status_code == 200
    Group.objects.create(name="ops").user_set.add(charlie)
    assert put(alice_client, board(uid="ops", visibility={"groups": ["ops"]})).status_code == 200
    assert Dashboard.objects.get(uid="ops").owner == alice

    def seen(user):
        listed = {b["uid"] for b in as_user(user).get(URL).json()["dashboards"]}
        one_by_one = {
            uid
            for uid in ("private", "everyone", "ops")
            if as_user(user).get(f"{URL}/{uid}").status_code == 200
        }
        assert listed == one_by_one
        return listed

    assert seen(alice) == {"private", "everyone", "ops"}
    assert seen(bob) == {"everyone"}
    assert seen(staff) == {"everyone"}
    assert seen(charlie) == {"ops"}  # no view_metric, but in the group
    assert seen(admin_user) == {"private", "everyone", "ops"}
    assert Client().get(URL).status_code == 401

    # Seeing is not editing: bob may see "everyone", not change it; the owner and the permission may.
    bobs = as_user(bob)
    current = bobs.get(f"{URL}/everyone").json()
    assert put(bobs, {**current, "title": "bob was here"}).status_code == 403
    assert bobs.delete(f"{URL}/everyone").status_code == 403
    assert bobs.delete(f"{URL}/private").status_code == 404
    bob.user_permissions.add(
        Permission.objects.get(codename="change_dashboard", content_type__app_label="boards")
    )
    bobs = as_user(bob)
    assert put(bobs, {**current, "title": "bob was here"}).json()["version"] == 2
    assert seen(bob) == {"private", "everyone", "ops"}
    # Charlie (no view_metric) may not create dashboards; bob may, as their owner.
    assert put(as_user(charlie), board(uid="charlies")).status_code == 403
    assert put(bobs, board(uid="bobs")).status_code == 200
    assert Dashboard.objects.get(uid="bobs").owner == bob
    listed = {b["uid"]: b for b in as_user(alice).get(URL).json()["dashboards"]}
    assert listed["everyone"]["editable"] is True and listed["everyone"]["owner"] == "alice"
    assert as_user(bob).get(URL, {"q": "CHECK", "tag": "prod"}).json()["dashboards"]
    assert as_user(bob).get(URL, {"tag": "nope"}).json()["dashboards"] == []


def test_a_session_needs_the_csrf_token_for_unsafe_methods(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    refused = put(client, board())
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert "CSRF" in refused.json()["detail"]
    client.get("/")  # sets the csrftoken cookie
    accepted = put(client, board(), HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert accepted.status_code == 200
    assert client.get(f"{URL}/checkout").status_code == 200  # reading needs none


def test_delete_restore_and_their_audit_entries(client, alice, token):
    alices = as_user(alice)
    put(alices, board())
    put(alices, {**board(title="second"), "version": 1})
    versions = alices.get(f"{URL}/checkout/versions").json()["versions"]
    assert [(v["version"], v["author"]) for v in versions] == [(2, "alice"), (1, "alice")]
    assert alices.get(f"{URL}/checkout/versions/1").json()["title"] == "Checkout"
    stale = alices.post(f"{URL}/checkout/versions/1/restore?current=1")
    assert stale.status_code == 409
    restored = alices.post(f"{URL}/checkout/versions/1/restore?current=2")
    assert restored.status_code == 200
    assert restored.json() == {**board(), "version": 3}
    assert alices.delete(f"{URL}/checkout?version=2").status_code == 409
    assert alices.delete(f"{URL}/checkout?version=3").status_code == 204
    assert alices.get(f"{URL}/checkout").status_code == 404
    entries = list(AuditEntry.objects.filter(action__startswith="dashboard.").order_by("id"))
    assert [(e.action, e.actor, e.target) for e in entries] == [
        ("dashboard.create", "alice", "dashboard checkout"),
        ("dashboard.change", "alice", "dashboard checkout"),
        ("dashboard.restore", "alice", "dashboard checkout"),
        ("dashboard.delete", "alice", "dashboard checkout"),
    ]
    assert entries[1].before["title"] == "Checkout" and entries[1].after["title"] == "second"
    assert entries[3].before["version"] == 3 and entries[3].after is None


def test_a_provisioned_dashboard_answers_409_provisioned(client, token, tmp_path, admin_user):
    from boards import provisioning

    (tmp_path / "checkout.json").write_text(json.dumps(board()))
    provisioning.sync(tmp_path)
    current = client.get(f"{URL}/checkout", **bearer(token)).json()
    for answer in (
        put(client, {**current, "title": "edited"}, **bearer(token)),
        client.delete(f"{URL}/checkout", **bearer(token)),
        put(as_user(admin_user), {**current, "title": "edited"}),
        as_user(admin_user).post(f"{URL}/checkout/versions/1/restore"),
    ):
        assert (answer.status_code, answer.json()["error"]) == (409, "provisioned")
    assert Dashboard.objects.get(uid="checkout").title == "Checkout"
    listed = client.get(URL, **bearer(token)).json()["dashboards"]
    assert listed[0]["provisioned"] is True and listed[0]["editable"] is False


def test_saving_pushes_dashboard_changed_once_committed_to_those_who_may_see_it(
    client, token, alice, bob, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    from boards import store

    sent = []
    monkeypatch.setattr(
        store.live, "send", lambda channel, event_type, data: sent.append((channel, event_type, data))
    )
    with django_capture_on_commit_callbacks(execute=True):
        put(client, board(visibility="everyone"), **bearer(token))
        assert sent == []  # nothing before the commit
    with django_capture_on_commit_callbacks(execute=True):
        client.delete(f"{URL}/checkout", **bearer(token))
    Group.objects.create(name="ops").user_set.add(bob)
    with django_capture_on_commit_callbacks(execute=True):
        put(as_user(alice), board(uid="ops", visibility={"groups": ["ops"]}))
    assert sent == [
        ("metrics", "dashboard-changed", {"uid": "checkout", "version": 1, "by": "token ci"}),
        ("metrics", "dashboard-changed", {"uid": "checkout", "version": None, "by": "token ci"}),
        *[
            (f"user-{user.pk}", "dashboard-changed", {"uid": "ops", "version": 1, "by": "alice"})
            for user in sorted([alice, bob, admin_user], key=lambda user: user.pk)
        ],
    ]


def test_the_home_dashboard_is_host_overview_until_the_user_chooses_one(alice, bob, token):
    from boards import store

    alices = as_user(alice)
    assert alices.get("/api/v1/home-dashboard").json() == {"uid": None}  # nothing provisioned yet
    store.save(board(uid="host-overview", visibility="everyone"), author=store.Author())
    assert alices.get("/api/v1/home-dashboard").json() == {"uid": "host-overview"}
    put(alices, board(uid="mine"))
    chosen = alices.put("/api/v1/home-dashboard", {"uid": "mine"}, content_type="application/json")
    assert chosen.json() == {"uid": "mine"}
    assert alices.get("/api/v1/home-dashboard").json() == {"uid": "mine"}
    bobs = as_user(bob)
    assert (
        bobs.put("/api/v1/home-dashboard", {"uid": "mine"}, content_type="application/json").status_code
        == 404
    )
    assert bobs.get("/api/v1/home-dashboard").json() == {"uid": "host-overview"}
    # A chosen dashboard that goes away leaves the default.
    alices.delete(f"{URL}/mine")
    assert alices.get("/api/v1/home-dashboard").json() == {"uid": "host-overview"}
    assert Client().get("/api/v1/home-dashboard", **bearer(token)).status_code == 403


@pytest.mark.parametrize("version", ["²", "x", "-1", "99999999999999999999", "1.5"])
def test_a_bad_version_in_the_path_or_query_is_400(client, token, version):
    put(client, board(), **bearer(token))
    for answer in (
        client.get(f"{URL}/checkout/versions/{version}", **bearer(token)),
        client.delete(f"{URL}/checkout?{urlencode({'version': version})}", **bearer(token)),
    ):
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid")
    assert Dashboard.objects.filter(uid="checkout").exists()
