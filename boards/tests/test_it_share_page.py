"""The page a share link opens (/s/TOKEN/): anonymous and read-only, it creates no
session and sets no cookie, sends no Referer away, offers only the values the link
reaches in its pickers, tells an unknown, revoked or expired link apart with a page of
its own, and opens no socket; and the share controls on the dashboard's page, for whoever
may share it."""

import datetime
import json
import re
import time

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from boards import sharing, store
from boards.models import ShareLink
from boards.tests.test_it_sharing import as_user, publish_all, shared_board


@pytest.fixture
def shop(transactional_db, alice, redis_url):
    publish_all(1.0, time.time() - 5)
    return store.save(shared_board(), author=store.Author(name="alice", owner=alice))


@pytest.fixture
def token(shop, alice):
    return sharing.create(shop, user=alice, note="wall")[1]


def page_config(response):
    found = re.search(
        rb'<script id="livedash-config" type="application/json">(.*?)</script>', response.content, re.S
    )
    return json.loads(found.group(1))


def sessions():
    from importlib import import_module

    return import_module(settings.SESSION_ENGINE).SessionStore.get_model_class().objects.count()


def test_the_page_draws_the_dashboard_for_anyone_holding_the_link_and_keeps_nothing(token):
    before = sessions()
    client = Client()
    response = client.get(f"/s/{token}/")
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    # No session, and no cookie at all: nothing on the page posts.
    assert response.cookies == {} and not client.cookies
    assert sessions() == before
    body = response.content.decode()
    assert '<h1 id="board-title" class="board-title">Checkout</h1>' in body
    config = page_config(response)
    assert config["share"]["token"] == token
    assert config["share"]["stateUrl"] == f"/s/{token}/state/"
    assert config["stream"]["channels"] == ["metrics"]
    # Who may see the dashboard is not the viewer's business; its panels are.
    document = config["board"]["document"]
    assert [p["title"] for p in document["panels"]] == ["CPU", "Orders"]
    assert not {"visibility", "uid", "tags", "version"} & set(document)
    assert config["board"]["editable"] is False
    # Read-only: no socket, no editor, no form, no annotations API (not anonymous).
    assert "socketPath" not in config and config.get("annotationsUrl") is None
    for script in ("control", "editor", "notifications", "shares"):
        assert f"/js/{script}." not in body
    assert "<form" not in body and "csrfmiddlewaretoken" not in body
    assert all(f"/js/{script}." in body for script in ("share", "board", "charts", "kiosk"))


def test_the_pickers_offer_only_what_the_link_reaches(token):
    # The variable reaches the hosts of cpu in dc "eu": web1 and web2, never db9 (dc "us").
    config = page_config(Client().get(f"/s/{token}/"))
    assert config["board"]["options"] == {"host": ["web1", "web2"]}
    # A value asked for in the address that the link does not reach is dropped.
    config = page_config(Client().get(f"/s/{token}/", {"var-host": ["db9", "web2"]}))
    assert config["board"]["variables"] == {"host": ["web2"]}


def test_a_signed_in_visitor_gets_the_same_page_and_no_more(token, bob):
    config = page_config(as_user(bob).get(f"/s/{token}/"))
    assert config["board"]["editable"] is False and config["user"] is None


def test_kiosk_marks_the_page(token):
    assert (
        b'class="dashboard-page board-page share-page kiosk"' in Client().get(f"/s/{token}/?kiosk=1").content
    )
    assert b"share-page kiosk" not in Client().get(f"/s/{token}/").content


def test_unknown_revoked_and_expired_links_each_get_a_page_saying_so(shop, alice, token):
    client = Client()
    unknown = client.get("/s/" + "x" * 43 + "/")
    assert unknown.status_code == 404 and b"No such share link" in unknown.content
    assert unknown["Referrer-Policy"] == "no-referrer"
    assert client.get("/s/short/").status_code == 404

    link = ShareLink.objects.get()
    sharing.revoke(link)
    revoked = client.get(f"/s/{token}/")
    assert revoked.status_code == 410 and b"Share link revoked" in revoked.content
    assert revoked["Referrer-Policy"] == "no-referrer"

    past = timezone.now() - datetime.timedelta(seconds=1)
    _, expired_token = sharing.create(shop, user=alice, expires=past)
    expired = client.get(f"/s/{expired_token}/")
    assert expired.status_code == 410 and b"Share link expired" in expired.content
    assert not client.cookies
    # In Spanish too, from the browser's language.
    spanish = client.get(f"/s/{token}/", headers={"accept-language": "es"})
    assert b"Enlace compartido revocado" in spanish.content


def test_the_state_tells_the_page_whether_its_link_still_works(shop, alice, token):
    client = Client()
    live = client.get(f"/s/{token}/state/")
    assert live.status_code == 200 and live.json() == {"state": "live", "expires": None}
    assert live["Referrer-Policy"] == "no-referrer"
    assert client.get("/s/" + "y" * 43 + "/state/").json() == {"state": "unknown"}
    sharing.revoke(ShareLink.objects.get())
    gone = client.get(f"/s/{token}/state/")
    assert gone.status_code == 410 and gone.json() == {"state": "revoked"}


def test_deleting_the_dashboard_ends_its_page(shop, token):
    store.delete("shop", author=store.Author(name="alice"))
    sharing.remembered.entries.clear()
    assert Client().get(f"/s/{token}/").status_code == 404


def test_the_link_opens_nothing_else(token):
    client = Client()
    assert client.get(f"/s/{token}/").status_code == 200
    # Holding a link is not being signed in: the dashboard's own page and the API stay shut.
    assert client.get("/d/shop/").status_code == 302
    assert client.get("/api/v1/dashboards/shop").status_code == 401
    assert client.get("/api/v1/dashboards/shop/shares").status_code == 401
    assert client.get("/admin/").status_code == 302
    assert client.get("/api/v1/labels/host/values").status_code == 401


def test_the_dashboard_page_offers_share_controls_to_whoever_may_share(shop, alice, bob):
    own = as_user(alice).get("/d/shop/")
    assert b'id="share-button"' in own.content and b"/js/shares." in own.content
    assert page_config(own)["shares"] == {"url": "/api/v1/dashboards/shop/shares"}
    # bob may see it (visible to everyone) but not edit it, so not share it.
    document = shared_board(visibility="everyone", version=shop.version)
    store.save(document, author=store.Author(name="alice"), expected_version=shop.version)
    other = as_user(bob).get("/d/shop/")
    assert other.status_code == 200
    assert b'id="share-button"' not in other.content and page_config(other)["shares"] is None
