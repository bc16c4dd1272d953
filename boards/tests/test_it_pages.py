"""The dashboard pages through Django's test client: who sees the list and a dashboard
(visibility private, everyone, groups; 404 for one you may not see, as for one that
does not exist), the editor's controls for those who may change it, a new dashboard,
and `/` showing the home dashboard a user chose."""

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from boards import store
from boards.models import Dashboard, HomeDashboard
from boards.tests.documents import board


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def make(uid, owner=None, **changes):
    author = store.Author(name=owner.username if owner else "", owner=owner)
    return store.save(board(uid=uid, title=f"Board {uid}", **changes), author=author)


def config_of(response):
    return response.context["page_config"]


@pytest.fixture
def boards(alice, bob, charlie):
    """alice owns a private, an everyone and an ops-group dashboard; charlie is in ops."""
    Group.objects.create(name="ops").user_set.add(charlie)
    return {
        "private": make("mine", alice, tags=[]),
        "everyone": make("shared", alice, visibility="everyone", tags=["team-a"]),
        "group": make("opsboard", alice, visibility={"groups": ["ops"]}, tags=["ops"]),
    }


def listed(client, query=""):
    response = client.get("/dashboards/" + query)
    assert response.status_code == 200
    return [board.uid for board in response.context["boards"]]


def test_it_sends_anonymous_users_to_log_in(client, boards):
    for path in ("/dashboards/", "/d/mine/", "/d/nothing/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.url.startswith(f"/accounts/login/?next={path}")


def test_the_list_shows_each_user_the_dashboards_their_visibility_allows(alice, bob, charlie, boards):
    assert listed(as_user(alice)) == ["mine", "opsboard", "shared"]
    # bob may view metrics: the everyone dashboard only.
    assert listed(as_user(bob)) == ["shared"]
    # charlie cannot view metrics, but is in ops.
    assert listed(as_user(charlie)) == ["opsboard"]


def test_the_list_searches_by_title_and_tag_and_links_each(alice, boards):
    client = as_user(alice)
    assert listed(client, "?q=SHARED") == ["shared"]
    assert listed(client, "?tag=ops") == ["opsboard"]
    assert listed(client, "?q=board&tag=team-a") == ["shared"]
    html = client.get("/dashboards/").content.decode()
    assert 'href="/d/shared/"' in html and 'href="/d/mine/"' in html


def test_new_dashboard_is_offered_to_those_who_may_create_and_opens_in_the_editor(alice, charlie, boards):
    assert b'action="/dashboards/new/"' in as_user(alice).get("/dashboards/").content
    assert b'action="/dashboards/new/"' not in as_user(charlie).get("/dashboards/").content
    response = as_user(alice).post("/dashboards/new/", {"title": "Night shift"})
    assert response.status_code == 302
    created = Dashboard.objects.get(title="Night shift")
    assert response.url == f"/d/{created.uid}/?edit=1"
    assert created.uid.startswith("night-shift-")
    assert (created.owner, created.version, created.visibility) == (alice, 1, "private")
    assert created.versions.get().author == "alice"
    assert as_user(charlie).post("/dashboards/new/", {"title": "x"}).status_code == 404


def test_a_dashboard_opens_for_who_may_see_it_and_is_404_for_anyone_else(alice, bob, charlie, boards):
    alice_client, bob_client, charlie_client = as_user(alice), as_user(bob), as_user(charlie)
    for uid in ("mine", "shared", "opsboard"):
        assert alice_client.get(f"/d/{uid}/").status_code == 200
    assert bob_client.get("/d/shared/").status_code == 200
    assert charlie_client.get("/d/opsboard/").status_code == 200
    # Not visible answers as nothing there would: the uid tells nothing.
    for client, uid in (
        (bob_client, "mine"),
        (bob_client, "opsboard"),
        (charlie_client, "mine"),
        (charlie_client, "shared"),
    ):
        assert client.get(f"/d/{uid}/").status_code == 404, uid
    assert alice_client.get("/d/nothing/").status_code == 404


def test_the_page_carries_the_dashboard_and_the_variables_of_the_address(alice, boards):
    response = as_user(alice).get("/d/shared/?var-host=a&var-host=b&var-env=prod")
    assert response.status_code == 200
    config = config_of(response)["board"]
    assert config["document"] == Dashboard.objects.get(uid="shared").export()
    assert config["variables"] == {"host": ["a", "b"], "env": ["prod"]}
    assert config["apiUrl"] == "/api/v1/dashboards/shared"
    assert config_of(response)["stream"]["channels"] == ["metrics", f"user-{alice.pk}"]
    html = response.content.decode()
    assert "<title>Board shared · livedash</title>" in html
    assert re.search(r"/static/js/board\.[0-9a-f]+\.js", html)
    assert re.search(r"/static/vendor/gridstack/gridstack-all\.[0-9a-f]+\.js", html)


def test_the_editor_is_there_for_owners_and_the_change_permission_only(alice, bob, boards):
    assert config_of(as_user(alice).get("/d/shared/"))["board"]["editable"] is True
    assert b'id="edit-button"' in as_user(alice).get("/d/shared/").content
    bob_page = as_user(bob).get("/d/shared/")
    assert config_of(bob_page)["board"]["editable"] is False
    assert b'id="edit-button"' not in bob_page.content
    bob.user_permissions.add(
        Permission.objects.get(content_type__app_label="boards", codename="change_dashboard")
    )
    bob = type(bob).objects.get(pk=bob.pk)
    assert config_of(as_user(bob).get("/d/shared/"))["board"]["editable"] is True


def test_a_provisioned_dashboard_is_not_edited_in_place(alice, boards):
    Dashboard.objects.filter(uid="mine").update(provisioned_from="mine.json")
    response = as_user(alice).get("/d/mine/")
    assert config_of(response)["board"]["editable"] is False
    assert config_of(response)["board"]["provisioned"] is True
    assert b'id="edit-button"' not in response.content


def test_home_is_the_chosen_dashboard_else_host_overview_else_the_page_of_every_metric(alice, bob, boards):
    client = as_user(alice)
    plain = client.get("/")
    assert "board" not in config_of(plain)
    assert b'data-section="host"' in plain.content
    HomeDashboard.objects.create(user=alice, uid="shared")
    home = client.get("/")
    assert config_of(home)["board"]["document"]["uid"] == "shared"
    # A home dashboard the user may no longer see, or that is gone: the page as before.
    HomeDashboard.objects.create(user=bob, uid="mine")
    assert "board" not in config_of(as_user(bob).get("/"))
    Dashboard.objects.filter(uid="shared").delete()
    assert "board" not in config_of(client.get("/"))
    # Once the host overview is provisioned, it is the default home of whoever may see it.
    overview = board(uid="host-overview", title="Host overview", visibility="everyone")
    store.save(overview, author=store.Author())
    Dashboard.objects.filter(uid="host-overview").update(provisioned_from="host-overview.json")
    for user in (alice, bob):
        assert config_of(as_user(user).get("/"))["board"]["document"]["uid"] == "host-overview"
    # A choice still wins over it.
    HomeDashboard.objects.filter(user=alice).update(uid="mine")
    assert config_of(client.get("/"))["board"]["document"]["uid"] == "mine"


def test_every_metric_stays_one_link_away_whatever_home_is(alice, boards):
    overview = board(uid="host-overview", title="Host overview", visibility="everyone")
    store.save(overview, author=store.Author())
    Dashboard.objects.filter(uid="host-overview").update(provisioned_from="host-overview.json")
    client = as_user(alice)
    home = client.get("/")
    assert b'href="/all/"' in home.content
    every = client.get("/all/")
    assert "board" not in config_of(every)
    assert b'data-section="host"' in every.content
    assert Client().get("/all/")["Location"].startswith("/accounts/login/")


def test_the_pages_keep_the_strict_policy(alice, boards):
    client = as_user(alice)
    for path in ("/dashboards/", "/d/shared/"):
        html = client.get(path).content.decode()
        scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
        assert all('type="application/json"' in attributes for attributes in scripts), path
        assert " style=" not in html, path
