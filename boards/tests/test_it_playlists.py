"""Playlists: the API (tokens, sessions, visibility, versions, bad input), the page
`/playlists/UID/` for signed-in viewers, the framing it needs, and anonymous shares,
which reach exactly what the share links they make reach."""

import json
import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from api.models import ApiToken
from audit.models import AuditEntry
from boards import playlists, sharing, store
from boards.models import Playlist, PlaylistShare, ShareLink
from boards.tests.documents import board
from dashboard import privacy

URL = "/api/v1/playlists"


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def put(client, document, uid=None, **headers):
    uid = uid or document["uid"]
    return client.put(f"{URL}/{uid}", json.dumps(document), content_type="application/json", **headers)


def playlist(uid="wall", entries=("shop", "ops"), **changes):
    return {
        "uid": uid,
        "title": "Wall",
        "interval": 30,
        "entries": [{"dashboard": u} for u in entries],
        **changes,
    }


def make_board(uid, owner, **changes):
    return store.save(
        board(uid, title=uid.title(), **changes), author=store.Author(name=owner.username, owner=owner)
    )


@pytest.fixture
def boards(alice, bob):
    """alice's private shop and ops, and bob's dashboard everyone may see."""
    return {
        "shop": make_board("shop", alice),
        "ops": make_board("ops", alice),
        "bobs": make_board("bobs", bob, visibility="everyone"),
    }


@pytest.fixture
def token(db):
    return ApiToken.create("ci", dashboards=True)[1]


def config_of(response):
    found = re.search(
        rb'<script id="playlist-config" type="application/json">(.*?)</script>', response.content
    )
    assert found, response.content[:500]
    return json.loads(found.group(1))


# --- the API --------------------------------------------------------------------------


def test_a_user_creates_replaces_reads_lists_and_deletes_a_playlist(alice, boards):
    client = as_user(alice)
    created = put(client, playlist())
    assert created.status_code == 200, created.content
    assert created.json() == {**playlist(), "visibility": "private", "version": 1, "owner": "alice"}
    assert client.get(f"{URL}/wall").json() == created.json()
    replaced = put(client, {**playlist(entries=["ops"]), "version": 1, "interval": 5})
    assert replaced.json()["version"] == 2
    assert replaced.json()["entries"] == [{"dashboard": "ops"}]
    assert [p["uid"] for p in client.get(URL).json()["playlists"]] == ["wall"]
    assert client.delete(f"{URL}/wall").status_code == 204
    assert client.get(f"{URL}/wall").status_code == 404
    actions = list(AuditEntry.objects.filter(target="playlist wall").values_list("action", flat=True))
    assert sorted(actions) == ["playlist.change", "playlist.create", "playlist.delete"]


def test_a_stale_version_answers_409_and_changes_nothing(alice, boards):
    client = as_user(alice)
    put(client, playlist())
    put(client, {**playlist(title="second"), "version": 1})
    stale = put(client, {**playlist(title="lost"), "version": 1})
    assert stale.status_code == 409
    assert stale.json()["error"] == "conflict"
    assert put(client, playlist()).json()["error"] == "conflict"  # creating over it
    assert Playlist.objects.get(uid="wall").title == "second"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"interval": 4}, "interval: must be at least 5, got 4"),
        ({"interval": 86401}, "interval: must be at most 86400"),
        ({"interval": "30"}, "interval: must be an integer, got a string"),
        ({"interval": True}, "interval: must be an integer, got a boolean"),
        ({"title": ""}, "title: must not be empty"),
        ({"entries": [{"dashboard": "shop"}, {"board": "ops"}]}, "entries[1].board: unknown key"),
        (
            {"entries": [{"dashboard": "shop"}, {"dashboard": "nope"}]},
            "entries[1].dashboard: no dashboard 'nope'",
        ),
        ({"entries": [{"dashboard": "a b"}]}, "entries[0].dashboard: must be letters, digits"),
        ({"entries": [{"dashboard": "shop"}] * 101}, "entries: must have at most 100 items"),
        ({"entries": "shop"}, "entries: must be a list, got a string"),
        ({"visibility": "public"}, "visibility: must be 'private', 'everyone'"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"uid": "other"}, "uid: the body's uid 'other' is not the path's 'wall'"),
    ],
)
def test_bad_input_answers_400_naming_the_place_and_stores_nothing(alice, boards, change, detail):
    answer = put(as_user(alice), {**playlist(), **change}, uid="wall")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"] == "invalid"
    assert detail in answer.json()["detail"]
    assert not Playlist.objects.exists()


def test_a_body_that_is_not_a_json_object_is_refused(alice, boards):
    client = as_user(alice)
    assert client.put(f"{URL}/wall", "[]", content_type="application/json").status_code == 400
    assert client.put(f"{URL}/wall", "{", content_type="application/json").status_code == 400
    assert client.put(f"{URL}/wall", "{}", content_type="text/plain").status_code == 415


def test_anonymous_get_nothing_and_a_token_needs_the_dashboards_scope(client, boards):
    assert client.get(URL).status_code == 401
    assert put(client, playlist()).status_code == 401
    metrics_only = ApiToken.create("push", metric_patterns=["*"])[1]
    assert client.get(URL, **bearer(metrics_only)).status_code == 403


def test_a_token_with_the_dashboards_scope_reads_and_changes_every_playlist(client, alice, boards, token):
    put(as_user(alice), playlist())
    assert client.get(f"{URL}/wall", **bearer(token)).status_code == 200
    changed = put(client, {**playlist(title="by ci"), "version": 1}, **bearer(token))
    assert changed.status_code == 200
    assert changed.json()["owner"] == "alice"
    assert AuditEntry.objects.filter(action="playlist.change", actor="token ci").exists()


def test_one_user_never_sees_nor_changes_anothers_private_playlist(alice, bob, boards):
    put(as_user(alice), playlist())
    client = as_user(bob)
    assert client.get(URL).json() == {"playlists": []}
    assert client.get(f"{URL}/wall").status_code == 404
    assert client.delete(f"{URL}/wall").status_code == 404
    assert put(client, {**playlist(entries=["bobs"]), "version": 1}).status_code == 403
    assert Playlist.objects.get().version == 1


def test_a_playlist_lists_only_dashboards_its_author_may_see(bob, boards):
    answer = put(as_user(bob), playlist(entries=["bobs", "shop"]))
    assert answer.status_code == 400
    assert "entries[1].dashboard: no dashboard 'shop' (or you may not see it)" in answer.json()["detail"]


def test_a_user_without_metrics_may_not_create_one(charlie, boards):
    answer = put(as_user(charlie), playlist(entries=[]))
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"


def test_visibility_follows_the_dashboards_rule(alice, bob, charlie, boards):
    client = as_user(alice)
    put(client, playlist(visibility="everyone"))
    assert as_user(bob).get(f"{URL}/wall").status_code == 200
    assert as_user(charlie).get(f"{URL}/wall").status_code == 404  # no dashboard.view_metric
    put(client, {**playlist(visibility={"groups": ["wall"]}), "version": 1})
    assert as_user(bob).get(f"{URL}/wall").status_code == 404
    bob.groups.add(Group.objects.create(name="wall"))
    assert as_user(bob).get(f"{URL}/wall").json()["visibility"] == {"groups": ["wall"]}
    # Seeing the playlist is not editing it.
    assert as_user(bob).delete(f"{URL}/wall").status_code == 403


# --- the page ---------------------------------------------------------------------------


def test_the_page_rotates_the_dashboards_the_viewer_may_see_in_kiosk_mode(alice, bob, boards):
    put(as_user(alice), playlist(entries=["shop", "bobs", "ops"], visibility="everyone"))
    mine = as_user(alice).get("/playlists/wall/")
    assert mine.status_code == 200
    config = config_of(mine)
    assert config["interval"] == 30
    assert [e["url"] for e in config["entries"]] == [
        "/d/shop/?kiosk=1",
        "/d/bobs/?kiosk=1",
        "/d/ops/?kiosk=1",
    ]
    assert [e["title"] for e in config["entries"]] == ["Shop", "Bobs", "Ops"]
    # bob sees the playlist but not alice's private dashboards in it.
    assert [e["url"] for e in config_of(as_user(bob).get("/playlists/wall/"))["entries"]] == [
        "/d/bobs/?kiosk=1"
    ]


def test_the_page_is_404_for_who_may_not_see_it_and_sends_anonymous_to_sign_in(client, alice, bob, boards):
    put(as_user(alice), playlist())
    assert as_user(bob).get("/playlists/wall/").status_code == 404
    assert as_user(bob).get("/playlists/nothing/").status_code == 404
    anonymous = client.get("/playlists/wall/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")


def test_only_kiosk_pages_may_be_framed_and_only_by_this_site(alice, boards):
    client = as_user(alice)
    kiosk = client.get("/d/shop/?kiosk=1")
    assert kiosk["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in kiosk["Content-Security-Policy"]
    plain = client.get("/d/shop/")
    assert plain["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in plain["Content-Security-Policy"]
    page = client.get("/playlists/nothing/")
    assert page["X-Frame-Options"] == "DENY"


# --- anonymous shares -------------------------------------------------------------------


def share(client, uid="wall", body=None):
    return client.post(f"{URL}/{uid}/shares", json.dumps(body or {}), content_type="application/json")


def test_a_shared_playlist_shows_an_anonymous_viewer_one_share_link_per_dashboard(alice, boards):
    client = as_user(alice)
    put(client, playlist(entries=["shop", "ops", "shop"]))
    made = share(client, body={"note": "lobby"})
    assert made.status_code == 201, made.content
    assert made.json()["dashboards"] == ["shop", "ops"]
    url = made.json()["url"]
    token = url.split("share=")[1]
    assert not PlaylistShare.objects.filter(token_hash=token).exists()  # only its hash is kept
    page = Client().get(url)
    assert page.status_code == 200
    assert page["Referrer-Policy"] == "no-referrer"
    assert token not in privacy.mask(f"GET {url} HTTP/1.1")  # log lines hide it
    entries = config_of(page)["entries"]
    assert [e["title"] for e in entries] == ["Shop", "Ops", "Shop"]
    # Each entry is an ordinary share link of its own dashboard, and nothing else.
    for entry, uid in zip(entries, ["shop", "ops", "shop"], strict=True):
        link_token = re.fullmatch(r"/s/([^/]+)/\?kiosk=1", entry["url"]).group(1)
        assert sharing.resolve(link_token).uid == uid
    assert ShareLink.objects.count() == 2
    assert set(ShareLink.objects.values_list("note", flat=True)) == {"playlist wall: lobby"}
    actions = AuditEntry.objects.values_list("action", flat=True)
    assert list(actions).count("share.create") == 2 and "playlist.share" in actions


def test_a_share_reaches_no_series_beyond_its_dashboards(alice, boards):
    client = as_user(alice)
    put(client, playlist(entries=["shop"]))
    url = share(client).json()["url"]
    link_token = config_of(Client().get(url))["entries"][0]["url"].split("/")[2]
    history = Client().get(
        "/api/metrics/history/", {"share": link_token, "minutes": 5, "match": "secret_revenue"}
    )
    assert history.status_code == 403
    # The playlist token itself is no share link.
    playlist_token = url.split("share=")[1]
    assert Client().get("/api/metrics/history/", {"share": playlist_token, "minutes": 5}).status_code == 403
    assert sharing.resolve(playlist_token) is None


def test_sharing_takes_the_right_to_share_every_dashboard_of_it(alice, bob, boards):
    put(as_user(bob), playlist(entries=["bobs"], visibility="everyone"))
    # alice may see bob's dashboard and even the playlist, not share either.
    assert share(as_user(alice)).status_code == 403
    # A playlist of alice's holding bob's dashboard: she may not share bob's.
    put(as_user(alice), playlist(uid="mine", entries=["shop", "bobs"]))
    refused = share(as_user(alice), uid="mine")
    assert refused.status_code == 403
    assert "bobs" in refused.json()["detail"]
    assert not ShareLink.objects.exists() and not PlaylistShare.objects.exists()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"expires": 1}, "expires: must be in the future"),
        ({"note": 5}, "note: must be a string"),
        ({"links": []}, "links: unknown key"),
    ],
)
def test_a_bad_share_request_is_400(alice, boards, body, detail):
    put(as_user(alice), playlist())
    answer = share(as_user(alice), body=body)
    assert answer.status_code == 400
    assert detail in answer.json()["detail"]


def test_revoking_the_share_ends_its_page_and_links(alice, boards):
    client = as_user(alice)
    put(client, playlist())
    made = share(client).json()
    assert [s["dashboards"] for s in client.get(f"{URL}/wall/shares").json()["shares"]] == [["shop", "ops"]]
    assert client.delete(f"{URL}/wall/shares/{made['id']}").status_code == 204
    assert Client().get(made["url"]).status_code == 404
    assert not ShareLink.objects.filter(revoked_at__isnull=True).exists()
    assert client.get(f"{URL}/wall/shares").json() == {"shares": []}
    assert client.delete(f"{URL}/wall/shares/{made['id']}").status_code == 404


def test_a_wrong_token_or_another_playlists_uid_is_404(alice, boards):
    client = as_user(alice)
    put(client, playlist())
    put(client, playlist(uid="other"))
    token = share(client).json()["url"].split("share=")[1]
    assert Client().get("/playlists/other/", {"share": token}).status_code == 404
    assert Client().get("/playlists/wall/", {"share": token[:-1] + "x"}).status_code == 404
    assert Client().get("/playlists/wall/", {"share": ""}).status_code == 404


def test_dashboards_added_later_or_whose_link_was_revoked_are_not_shown(alice, boards):
    client = as_user(alice)
    put(client, playlist(entries=["shop"]))
    url = share(client).json()["url"]
    put(client, {**playlist(entries=["shop", "ops"]), "version": 1})
    assert [e["title"] for e in config_of(Client().get(url))["entries"]] == ["Shop"]
    sharing.revoke(ShareLink.objects.get(dashboard__uid="shop"))
    assert config_of(Client().get(url))["entries"] == []


def test_deleting_a_playlist_revokes_its_shares_links(alice, boards):
    client = as_user(alice)
    put(client, playlist())
    share(client)
    assert client.delete(f"{URL}/wall").status_code == 204
    assert not ShareLink.objects.filter(revoked_at__isnull=True).exists()


def test_entry_tokens_depend_on_the_playlist_token_and_the_dashboard():
    one = playlists.entry_token("a" * 43, "shop")
    assert one == playlists.entry_token("a" * 43, "shop")
    assert one != playlists.entry_token("b" * 43, "shop")
    assert one != playlists.entry_token("a" * 43, "ops")
    assert len(one) == 43
