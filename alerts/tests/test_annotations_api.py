"""Annotations over HTTP: a token with the annotate scope adds them; tokens and
viewers read them by window and selector."""

import json

import pytest
from django.test import Client

from alerts.models import Annotation
from api.models import ApiToken

T = 1_767_225_600


@pytest.fixture
def annotator(transactional_db, redis_url):
    return ApiToken.create("deploys", annotate=True)[1]


def post(raw, body):
    return Client().post(
        "/api/v1/annotations",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"} if raw else {},
    )


def get(query, raw=None, client=None):
    headers = {"Authorization": f"Bearer {raw}"} if raw else {}
    return (client or Client()).get(f"/api/v1/annotations?{query}", headers=headers)


def test_added_annotations_are_read_back_by_window_and_selector(annotator):
    deploy = post(
        annotator, {"time": T, "text": "deploy 1.4", "tags": ["deploy"], "match": 'cpu{host="web1"}'}
    )
    assert deploy.status_code == 201, deploy.content
    window = post(annotator, {"time": T + 600, "end": T + 1200, "text": "maintenance"})
    other = post(annotator, {"time": T + 700, "text": "disk swap", "match": "disk"})
    assert window.status_code == other.status_code == 201

    everything = get(f"start={T - 10}&end={T + 2000}", annotator).json()["annotations"]
    assert [a["text"] for a in everything] == ["deploy 1.4", "maintenance", "disk swap"]
    assert everything[0] == {
        "id": deploy.json()["id"],
        "time": float(T),
        "end": None,
        "text": "deploy 1.4",
        "tags": ["deploy"],
        "match": 'cpu{host="web1"}',
        "created_by": "token deploys",
    }
    cpu = get(f"start={T - 10}&end={T + 2000}&match=cpu", annotator).json()["annotations"]
    assert [a["text"] for a in cpu] == ["deploy 1.4", "maintenance"]  # the window is everyone's
    # A band overlapping the window's start is in it.
    late = get(f"start={T + 1100}&end={T + 2000}", annotator).json()["annotations"]
    assert [a["text"] for a in late] == ["maintenance"]


@pytest.mark.parametrize(
    "body, problem",
    [
        ({"text": "no time"}, "needs time and text"),
        ({"time": "noon", "text": "x"}, "unix seconds"),
        ({"time": T, "end": T - 1, "text": "x"}, "end must not be before"),
        ({"time": T, "text": ""}, "text must be"),
        ({"time": T, "text": "x", "match": '{a=~"("}'}, "invalid regex"),
        ({"time": T, "text": "x", "colour": 1}, "unknown keys"),
    ],
)
def test_bad_annotations_are_400(annotator, body, problem):
    answer = post(annotator, body)
    assert answer.status_code == 400 and problem in answer.json()["detail"]
    assert not Annotation.objects.exists()


def test_who_may_add_and_read(annotator, alice):
    from conftest import _make_user

    assert post(None, {"time": T, "text": "x"}).status_code == 401
    reader = ApiToken.create("grafana", read=True)[1]
    assert post(reader, {"time": T, "text": "x"}).status_code == 403
    assert get("", reader).status_code == 200
    assert get("").status_code == 401
    viewer = Client()
    viewer.force_login(alice)  # may view the metrics
    assert get("", client=viewer).status_code == 200
    stranger = Client()
    stranger.force_login(_make_user("nobody"))
    assert get("", client=stranger).status_code == 403
