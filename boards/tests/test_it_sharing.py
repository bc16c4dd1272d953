"""Share links: the API (who may make, list and revoke them), their audit, their scope
(the dashboard's selectors, variables widened to what they reach), and history read
through one, which that scope bounds however the query is edited."""

import json
import time

import pytest
from django.test import Client

from api.models import ApiToken
from audit.models import AuditEntry
from boards import sharing, store
from boards.models import ShareLink
from boards.tests.documents import board
from dashboard import selectors
from dashboard.live import publish_metrics

URL = "/api/v1/dashboards"
HISTORY = "/api/metrics/history/"


def shared_board(uid="shop", **changes):
    """A dashboard whose variable `host` reaches the hosts of `cpu` in dc eu."""
    defaults = {
        "variables": [{"name": "host", "label_of": "host", "match": 'cpu{dc="eu"}'}],
        "panels": [
            {
                "id": 1,
                "title": "CPU",
                "type": "timeseries",
                "series": ['cpu{host=~"$host"}'],
                "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
            },
            {
                "id": 2,
                "title": "Orders",
                "type": "stat",
                "series": ["orders"],
                "grid": {"x": 6, "y": 0, "w": 6, "h": 4},
            },
        ],
    }
    return board(uid, **{**defaults, **changes})


SERIES = [
    ("cpu", {"dc": "eu", "host": "web1"}),
    ("cpu", {"dc": "eu", "host": "web2"}),
    ("cpu", {"dc": "us", "host": "db9"}),
    ("orders", {}),
    ("mem", {"host": "web1"}),
    ("secret_revenue", {}),
]


def publish_all(value=1.0, ts=None):
    publish_metrics([(name, value, ts, labels) for name, labels in SERIES])


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def post_share(client, uid="shop", body=None, **headers):
    return client.post(
        f"{URL}/{uid}/shares", json.dumps(body or {}), content_type="application/json", **headers
    )


@pytest.fixture
def shop(transactional_db, alice, redis_url):
    return store.save(shared_board(), author=store.Author(name="alice", owner=alice))


def wanted(selection):
    from dashboard.series import series_id

    return sorted(series_id(name, labels) for name, labels in SERIES if selection.matches(name, labels))


def test_the_scope_is_the_panels_selectors_with_variables_widened_to_what_they_reach(shop):
    publish_all()
    scope = sharing.compute_scope(shop.document)
    assert wanted(scope) == ['cpu{dc="eu",host="web1"}', 'cpu{dc="eu",host="web2"}', "orders"]


def test_an_unconstrained_variable_drops_its_matcher_and_negative_matchers_go(shop):
    document = shared_board(
        variables=[{"name": "host", "label_of": "host"}],
        panels=[
            {
                "id": 1,
                "title": "",
                "type": "table",
                "series": ['cpu{host="$host",dc!="$host"}', '$host{dc="eu"}'],
                "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
            }
        ],
    )
    scope = sharing.compute_scope(document)
    # `cpu` whatever the host; `$host` in the name place alone would select every metric
    # of dc eu: it is a matcher on __name__ that constrains nothing, so that selector goes.
    assert [str(s) for s in scope.selectors] == ["cpu"]


def test_a_variable_reaching_no_value_leaves_its_selectors_out(shop):
    scope = sharing.compute_scope(shop.document)  # nothing published: no host reached
    assert [str(s) for s in scope.selectors] == ["orders"]


def test_a_match_narrows_the_scope_and_never_widens_it(shop):
    publish_all()
    link = sharing.Link(1, shop.pk, shop.uid, None, sharing.compute_scope(shop.document))
    narrowed = sharing.narrowed(link, selectors.selection(['{host=~"web.*"}']))
    assert wanted(narrowed) == ['cpu{dc="eu",host="web1"}', 'cpu{dc="eu",host="web2"}']
    # `cpu` alone would be db9 too: the scope still bounds it.
    assert wanted(sharing.narrowed(link, selectors.selection(["cpu"]))) == wanted(narrowed)
    for outside in ("mem", "secret_revenue", 'cpu{host="db9"}', '{__name__=~"secret.*"}'):
        with pytest.raises(sharing.OutOfScope):
            sharing.narrowed(link, selectors.selection([outside]))


def test_conjoined_selectors_print_as_selectors_that_parse_again():
    left, right = selectors.parse('cpu{host=~"web.*"}'), selectors.parse('{__name__=~"c.*",host="web1"}')
    both = selectors.conjoin(left, right)
    assert str(both) == 'cpu{host="web1"}'
    assert selectors.parse(str(both)) == both
    assert selectors.conjoin(selectors.parse("cpu"), selectors.parse("mem")) is None
    assert selectors.conjoin(selectors.parse('cpu{host="a"}'), selectors.parse('{host=~"b.*"}')) is None


def test_it_creates_lists_and_revokes_links_for_whoever_may_edit_and_audits_each(shop, alice, bob):
    owner = as_user(alice)
    created = post_share(owner, body={"note": "wall screen", "expires": time.time() + 3600})
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == {"id", "url", "expires"}
    token = body["url"].removeprefix("/s/").removesuffix("/")
    assert body["url"] == f"/s/{token}/" and len(token) >= 40
    link = ShareLink.objects.get(pk=body["id"])
    assert token not in link.token_hash and link.token_hash == sharing.hash_token(token)

    listed = owner.get(f"{URL}/shop/shares").json()["shares"]
    assert [(s["id"], s["note"], s["created_by"], s["last_used_at"]) for s in listed] == [
        (link.pk, "wall screen", "alice", None)
    ]
    assert listed[0]["viewers"] == 0

    # Bob may view metrics but not edit alice's private dashboard: he learns nothing.
    assert post_share(as_user(bob)).status_code == 404
    assert as_user(bob).get(f"{URL}/shop/shares").status_code == 404
    assert as_user(bob).delete(f"{URL}/shop/shares/{link.pk}").status_code == 404
    assert Client().get(f"{URL}/shop/shares").status_code == 401

    # Used once: last used is set, and the first use is audited (once).
    assert sharing.resolve(token).id == link.pk
    sharing.remembered.entries.clear()
    assert sharing.resolve(token).id == link.pk
    assert owner.get(f"{URL}/shop/shares").json()["shares"][0]["last_used_at"] is not None

    assert owner.delete(f"{URL}/shop/shares/{link.pk}").status_code == 204
    assert owner.delete(f"{URL}/shop/shares/{link.pk}").status_code == 404
    assert owner.get(f"{URL}/shop/shares").json()["shares"] == []
    assert sharing.resolve(token) is None
    actions = list(AuditEntry.objects.filter(action__startswith="share.").values_list("action", "actor"))
    assert sorted(actions) == sorted(
        [("share.create", "alice"), ("share.first_use", f"share link {link.pk}"), ("share.revoke", "alice")]
    )


def test_a_token_with_the_dashboards_scope_may_share(shop):
    raw = ApiToken.create("ci", dashboards=True)[1]
    created = post_share(Client(), HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert created.status_code == 201, created.content


@pytest.mark.parametrize(
    "body",
    [{"expires": 1}, {"expires": "tomorrow"}, {"note": 5}, {"note": "x" * 201}, {"other": 1}, [1]],
)
def test_it_refuses_a_bad_body(shop, alice, body):
    response = post_share(as_user(alice), body=body)
    assert response.status_code == 400, response.content


def test_an_expired_link_resolves_to_nothing_and_deleting_the_dashboard_ends_its_links(shop, alice):
    import datetime

    from django.utils import timezone

    past = timezone.now() - datetime.timedelta(seconds=1)
    _, expired = sharing.create(shop, user=alice, expires=past)
    _, live = sharing.create(shop, user=alice)
    assert sharing.resolve(expired) is None
    assert sharing.resolve(live) is not None
    store.delete("shop", author=store.Author(name="alice"))
    assert not ShareLink.objects.exists()
    sharing.remembered.entries.clear()
    assert sharing.resolve(live) is None


def test_history_through_a_link_holds_only_its_scope(shop, alice, client):
    publish_all(2.0, time.time() - 5)
    _, token = sharing.create(shop, user=alice)
    anonymous = Client()
    body = anonymous.get(HISTORY, {"share": token}).json()
    assert sorted(body["series"]) == ['cpu{dc="eu",host="web1"}', 'cpu{dc="eu",host="web2"}', "orders"]
    assert sorted(m["key"] for m in body["metrics"]) == ["cpu", "orders"]
    narrowed = anonymous.get(HISTORY, {"share": token, "match": 'cpu{host="web2"}'}).json()
    assert list(narrowed["series"]) == ['cpu{dc="eu",host="web2"}']
    # No edit of the query reaches further.
    for match in ("secret_revenue", "mem", 'cpu{host="db9"}'):
        refused = anonymous.get(HISTORY, {"share": token, "match": match})
        assert refused.status_code == 403, match
    widened = anonymous.get(HISTORY, {"share": token, "match": "cpu"}).json()
    assert 'cpu{dc="us",host="db9"}' not in widened["series"]
    now = time.time()
    old = {"share": token, "start": now - 40 * 86400, "end": now - 39 * 86400}
    assert anonymous.get(HISTORY, old).status_code == 403
    assert anonymous.get(HISTORY, {"share": token, "minutes": 43200}).status_code == 200
    assert anonymous.get(HISTORY, {"share": "x" * 43}).status_code == 403
    assert anonymous.get(HISTORY).status_code == 403  # without the link, still no history


def test_editing_the_dashboard_changes_what_the_link_reads(shop, alice):
    publish_all(3.0, time.time() - 5)
    _, token = sharing.create(shop, user=alice)
    before = Client().get(HISTORY, {"share": token}).json()["series"]
    assert 'mem{host="web1"}' not in before
    document = shared_board(version=shop.version)
    document["panels"][1]["series"] = ["mem"]
    store.save(document, author=store.Author(name="alice"), expected_version=shop.version)
    sharing.remembered.entries.clear()  # the revocation message reaches event loops; this is a test thread
    after = Client().get(HISTORY, {"share": token}).json()["series"]
    assert "orders" not in after and 'mem{host="web1"}' in after
