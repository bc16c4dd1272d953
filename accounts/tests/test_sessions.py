"""`/account/sessions/`: what it lists, and that ending a session signs it out and
closes what it has open on every worker."""

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client
from django.utils import translation

from accounts.browsers import describe_browser
from accounts.models import UserSession
from conftest import PASSWORD

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)
EDGE = CHROME_MAC + " Edg/131.0.0.0"


def signed_in(user, user_agent, address):
    client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address)
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


@translation.override("en")
def test_browsers_in_a_few_words():
    assert describe_browser(FIREFOX) == "Firefox on Linux"
    assert describe_browser(CHROME_MAC) == "Chrome on macOS"
    assert describe_browser(EDGE) == "Edge on macOS"
    assert describe_browser("") == "Unknown browser"


@pytest.mark.django_db
def test_the_page_lists_the_users_own_sessions(alice, bob):
    laptop = signed_in(alice, FIREFOX, "10.0.0.7")
    signed_in(alice, CHROME_MAC, "192.0.2.44")
    signed_in(bob, EDGE, "198.51.100.9")
    page = laptop.get("/account/sessions/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Firefox on Linux" in text and "10.0.0.7" in text
    assert "Chrome on macOS" in text and "192.0.2.44" in text
    assert "Edge" not in text and "198.51.100.9" not in text  # bob's
    assert text.count("This session") == 1


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get("/account/sessions/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_session_ended_or_logged_out_disappears(alice):
    laptop = signed_in(alice, FIREFOX, "10.0.0.7")
    phone = signed_in(alice, CHROME_MAC, "192.0.2.44")
    assert UserSession.objects.filter(user=alice).count() == 2
    phone.post("/accounts/logout/")
    assert [row.address for row in UserSession.objects.live_of(alice)] == ["10.0.0.7"]
    assert laptop.get("/account/sessions/").status_code == 200


@pytest.mark.django_db
def test_ending_another_session_signs_it_out_and_is_audited(alice, django_capture_on_commit_callbacks):
    from audit.models import AuditEntry

    laptop = signed_in(alice, FIREFOX, "10.0.0.7")
    phone = signed_in(alice, CHROME_MAC, "192.0.2.44")
    other = UserSession.objects.get(user=alice, address="192.0.2.44")
    with django_capture_on_commit_callbacks() as revocations:
        response = laptop.post(f"/account/sessions/{other.pk}/end/")
    assert response.status_code == 302
    assert len(revocations) == 1  # the user's streams and sockets are told to close
    assert phone.get("/").status_code == 302  # back to the login page
    assert laptop.get("/").status_code == 200
    entry = AuditEntry.objects.get(action="session_ended")
    assert entry.actor == "alice" and "Chrome on macOS" in entry.target and entry.address == "10.0.0.7"


@pytest.mark.django_db
def test_nobody_ends_someone_elses_session(alice, bob):
    signed_in(alice, FIREFOX, "10.0.0.7")
    bobs_client = signed_in(bob, EDGE, "198.51.100.9")
    alices = UserSession.objects.get(user=alice)
    bobs_client.post(f"/account/sessions/{alices.pk}/end/")
    assert UserSession.objects.live_of(alice) == [alices]


@pytest.mark.django_db
def test_end_all_others_keeps_this_one(alice):
    laptop = signed_in(alice, FIREFOX, "10.0.0.7")
    others = [signed_in(alice, CHROME_MAC, f"192.0.2.{n}") for n in range(3)]
    laptop.post("/account/sessions/end-others/")
    assert [row.address for row in UserSession.objects.live_of(alice)] == ["10.0.0.7"]
    for client in others:
        assert client.get("/").status_code == 302
    assert laptop.get("/").status_code == 200


@pytest.mark.django_db
def test_a_session_from_before_tracking_appears_on_its_next_request(alice):
    from tests.realclients import session_cookie

    client = Client(HTTP_USER_AGENT=FIREFOX, REMOTE_ADDR="10.0.0.8")
    client.cookies[settings.SESSION_COOKIE_NAME] = session_cookie(alice)[settings.SESSION_COOKIE_NAME]
    UserSession.objects.all().delete()
    client.get("/account/sessions/")
    client.get("/")
    (row,) = UserSession.objects.live_of(alice)
    assert row.address == "10.0.0.8" and row.browser == "Firefox on Linux"


def end_the_other_session(user, keep_cookies):
    keep = keep_cookies[settings.SESSION_COOKIE_NAME]
    (other,) = [row for row in UserSession.objects.filter(user=user) if row.session_key != keep]
    other.end()


@pytest.mark.slow
async def test_ending_a_session_closes_its_streams_and_sockets_on_every_worker(daphne_workers, alice):
    from dashboard.control import protocol
    from dashboard.live import publish_metric
    from tests.realclients import EventStream, open_socket, session_cookie

    workers = daphne_workers(2)
    lost = await sync_to_async(session_cookie)(alice)
    kept = await sync_to_async(session_cookie)(alice)
    async with (
        open_socket(workers[0], lost) as socket,
        EventStream(workers[1], ["metrics"], lost) as stream,
        # The user's other session, on the same workers: its connections stay open.
        open_socket(workers[0], kept) as kept_socket,
        EventStream(workers[1], ["metrics"], kept) as kept_stream,
    ):
        for opened in (socket, kept_socket):
            await opened.wait_for(lambda m: m.get("type") == "hello")
        for opened in (stream, kept_stream):
            await opened.wait_for(lambda e: e["event"] == "stream-open")
        started = time.monotonic()
        await sync_to_async(end_the_other_session)(alice, kept)
        code, _ = await asyncio.gather(socket.closed(), asyncio.wait_for(stream.ended.wait(), 10))
        elapsed = time.monotonic() - started
        assert code == protocol.CLOSE_REVOKED
        assert elapsed < 1.0, f"closed after {elapsed:.2f}s"
        # The other session's socket still answers and its stream still carries values.
        assert (await kept_socket.command("ping"))["type"] == "pong"
        await sync_to_async(publish_metric)("kept_session_check", 1.0)
        await kept_stream.wait_for(lambda e: "kept_session_check" in json.dumps(e))
        assert kept_socket.close_code is None and not kept_stream.ended.is_set()
    # The ended session is refused everywhere; the other one carries on.
    async with EventStream(workers[0], ["metrics"], lost) as again:
        assert again.status == 403
    async with EventStream(workers[1], ["metrics"], kept) as still:
        assert still.status == 200


@pytest.mark.django_db
def test_the_admin_lists_sessions_and_ends_them(admin_client, alice):
    phone = signed_in(alice, CHROME_MAC, "192.0.2.44")
    row = UserSession.objects.get(user=alice)
    page = admin_client.get("/admin/accounts/usersession/")
    assert page.status_code == 200 and "Chrome on macOS" in page.content.decode()
    admin_client.post(
        "/admin/accounts/usersession/", {"action": "end_sessions", "_selected_action": [row.pk]}
    )
    assert phone.get("/").status_code == 302
    assert not UserSession.objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
def test_sign_ins_and_their_failures_are_audited(alice):
    from audit.models import AuditEntry

    client = signed_in(alice, FIREFOX, "10.0.0.7")
    client.post("/accounts/logout/")
    Client(REMOTE_ADDR="10.0.0.9").post("/accounts/login/", {"username": "alice", "password": "wrong"})
    entries = [(e.action, e.actor, e.target, e.address) for e in AuditEntry.objects.order_by("pk")]
    assert ("sign_in", "alice", "alice", "10.0.0.7") in entries
    assert ("sign_out", "alice", "alice", "10.0.0.7") in entries
    assert ("sign_in_failed", "", "alice", "10.0.0.9") in entries
    assert all("wrong" not in str(entry) for entry in entries)


@pytest.mark.django_db
def test_the_page_speaks_spanish(alice):
    client = signed_in(alice, FIREFOX, "10.0.0.7")
    page = client.get("/account/sessions/", HTTP_ACCEPT_LANGUAGE="es")
    text = page.content.decode()
    assert "Tus sesiones" in text and "Firefox en Linux" in text
