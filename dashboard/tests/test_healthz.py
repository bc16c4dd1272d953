import json

from django.test import override_settings


def test_it_answers_200_when_database_and_redis_answer(client, db, redis_url):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok", "database": "ok", "redis": "ok"}


def test_it_needs_no_login(client, db, redis_url):
    assert client.get("/healthz").status_code == 200


def test_it_answers_503_when_redis_is_down(client, db):
    from dashboard.redis import get_sync_client
    from deploy.supervisor import free_port

    get_sync_client.cache_clear()
    try:
        with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
            response = client.get("/healthz")
    finally:
        get_sync_client.cache_clear()
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["redis"] == "down"
    assert body["database"] == "ok"


def test_it_answers_503_when_the_database_is_down(client, db, redis_url, monkeypatch):
    from django.db import DatabaseError
    from django.db.backends.base import base

    def refuse(self):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(base.BaseDatabaseWrapper, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content)["database"] == "down"
