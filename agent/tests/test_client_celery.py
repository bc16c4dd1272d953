"""livedash_client's Celery hooks, driven by a real Celery app's signals (tasks run eagerly)."""

import line_protocol_parser
import pytest
from agent_receiver import Receiver
from celery import Celery
from livedash_client import celery as livedash_celery
from livedash_client.recorder import Recorder


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def celery_app():
    app = Celery("shop", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True

    @app.task(name="shop.send_mail")
    def send_mail(to):
        return f"sent to {to}"

    @app.task(name="shop.charge")
    def charge(amount):
        if amount < 0:
            raise ValueError("negative amount")
        return amount

    return app


@pytest.fixture
def recorder(receiver):
    clock = Clock()
    recorder = Recorder(receiver.url, "tok", "shop", clock=clock, wallclock_ns=lambda: 7_000_000_000)
    recorder._thread = object()  # flushed by hand here
    recorder.test_clock = clock
    return recorder


@pytest.fixture
def hooks(recorder):
    hooks = livedash_celery.connect(recorder=recorder)
    yield hooks
    hooks.disconnect()


def pushed(recorder, receiver):
    recorder.test_clock.now += 1.0
    recorder.flush()
    found = {}
    for line in receiver.stored_lines():
        point = line_protocol_parser.parse_line(line)
        found[(point["measurement"], *sorted(point["tags"].items()))] = point["fields"]["value"]
    return found


def test_runs_failures_and_durations_by_task_name(celery_app, hooks, recorder, receiver):
    for to in ("a", "b", "c"):
        assert celery_app.tasks["shop.send_mail"].delay(to).get() == f"sent to {to}"
    celery_app.tasks["shop.charge"].delay(5).get()
    celery_app.tasks["shop.charge"].delay(-1)  # eager: the failure is recorded in its result

    got = pushed(recorder, receiver)
    app = ("app", "shop")
    assert got[("celery_task_runs", app, ("task", "shop.send_mail"))] == 3.0
    assert got[("celery_task_runs", app, ("task", "shop.charge"))] == 2.0
    assert got[("celery_task_failures", app, ("exception", "ValueError"), ("task", "shop.charge"))] == 1.0
    assert ("celery_task_failures", app, ("exception", "ValueError"), ("task", "shop.send_mail")) not in got
    for suffix in ("p50", "p95", "max"):
        assert got[(f"celery_task_ms_{suffix}", app, ("task", "shop.send_mail"))] >= 0


def test_a_task_whose_postrun_never_comes_does_not_grow_the_hooks_for_ever(recorder):
    hooks = livedash_celery.TaskHooks(recorder)
    for n in range(livedash_celery.MAX_RUNNING + 50):
        hooks.task_prerun(task_id=f"id-{n}")
    assert len(hooks._started) == livedash_celery.MAX_RUNNING


def test_connect_says_what_is_missing(monkeypatch, settings):
    monkeypatch.delenv("LIVEDASH_URL", raising=False)
    settings.LIVEDASH_URL = None
    with pytest.raises(ValueError, match="LIVEDASH_URL and LIVEDASH_TOKEN"):
        livedash_celery.connect()
