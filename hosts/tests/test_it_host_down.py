"""A host going quiet for 3 of its intervals raises one "Host down" alert through the
normal alert path (the rule's series alert, its history, one notification), resolved
when the host is back: first with the evaluator on a simulated clock, then with real
processes (an agent pushing to a web worker, the collector judging)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alerts.evaluation import AlertEvaluator
from alerts.models import AlertEvent, SeriesAlert
from api.models import ApiToken
from dashboard import frames
from deploy.supervisor import Supervisor
from hosts import liveness
from hosts.liveness import HostTracker
from hosts.rules import NAME, register_host_down_rule
from notifications.models import Notification

AGENT_DIR = Path(__file__).resolve().parents[2] / "agent"
WAIT_SECONDS = 60


class Feed:
    """What the evaluator's feed would read: points published since the last tick."""

    def __init__(self):
        self.pending = []

    def push(self, host, ts):
        data = frames.metric("cpu", 10.0, ts, {"host": host})
        self.pending.extend(frames.points_of(frames.METRIC, data))

    def __call__(self):
        points, self.pending = self.pending, []
        return points


@pytest.fixture
def rule(transactional_db, redis_url):
    # No wait before the group's first message: the test reads it at once.
    return register_host_down_rule(group_wait=0, group_interval=0)[0]


def host_down_notifications():
    return list(Notification.objects.filter(message_params__rule=NAME).order_by("id"))


def test_a_quiet_host_fires_once_and_resolves_when_back(rule):
    feed, now = Feed(), 1_700_000_000.0
    evaluator = AlertEvaluator(feed=feed, hosts=HostTracker())
    # web9 pushes every 2 s; once-1 pushed one value only (no pace: never judged).
    feed.push("once-1", now)
    for second in range(12):
        if second % 2 == 0:
            feed.push("web9", now)
        evaluator.evaluate({}, now)
        now += 1
    assert not AlertEvent.objects.exists()
    # The page reads the pace the collector learned; once-1 has none.
    assert liveness.seen()["web9"]["interval"] == 2.0
    assert liveness.seen()["once-1"]["interval"] is None
    # Quiet: down once more than 3 intervals (6 s) and a tick have passed.
    for _ in range(30):
        evaluator.evaluate({}, now)
        now += 1
    fired = AlertEvent.objects.filter(kind=AlertEvent.Kind.FIRED)
    assert [event.series for event in fired] == ['host_up{host="web9"}']
    assert SeriesAlert.objects.get(rule=rule, series='host_up{host="web9"}').firing
    (told,) = host_down_notifications()
    assert told.title.startswith("Host down") and 'host="web9"' in told.title
    # Back: resolved, and said once.
    for _ in range(5):
        feed.push("web9", now)
        evaluator.evaluate({}, now)
        now += 1
    resolved = AlertEvent.objects.filter(kind=AlertEvent.Kind.RESOLVED)
    assert [event.series for event in resolved] == ['host_up{host="web9"}']
    assert not SeriesAlert.objects.get(rule=rule, series='host_up{host="web9"}').firing
    assert len(host_down_notifications()) == 2
    assert host_down_notifications()[1].title.startswith("Resolved: Host down")


def test_a_revoked_host_resolves_instead_of_staying_down(rule):
    feed, now = Feed(), 1_700_000_000.0
    evaluator = AlertEvaluator(feed=feed, hosts=HostTracker())
    for _ in range(4):
        feed.push("gone-1", now)
        evaluator.evaluate({}, now)
        now += 1
    for _ in range(10):
        evaluator.evaluate({}, now)
        now += 1
    assert SeriesAlert.objects.get(rule=rule).firing
    liveness.forget("gone-1", now=now)
    evaluator.evaluate({}, now + 1)
    assert not SeriesAlert.objects.get(rule=rule).firing
    assert AlertEvent.objects.filter(kind=AlertEvent.Kind.RESOLVED, detail__startswith="no data").count() == 1
    assert "gone-1" not in liveness.seen()


def test_a_restarted_collector_still_notices_a_host_that_stopped_meanwhile(rule):
    feed, now = Feed(), 1_700_000_000.0
    first = AlertEvaluator(feed=feed, hosts=HostTracker())
    for _ in range(4):
        feed.push("web7", now)
        first.evaluate({}, now)
        now += 1
    # A new collector (its memory empty) while web7 says nothing more.
    second = AlertEvaluator(feed=feed, hosts=HostTracker())
    for _ in range(10):
        second.evaluate({}, now)
        now += 1
    assert SeriesAlert.objects.get(rule=rule, series='host_up{host="web7"}').firing


class FailingFeed(Feed):
    """The feed while Redis is away: it raises, as reading the event store would."""

    def __init__(self):
        super().__init__()
        self.away = False

    def __call__(self):
        if self.away:
            raise ConnectionError("Redis is away")
        return super().__call__()


def test_while_the_published_values_cannot_be_read_no_host_is_called_down(rule):
    feed, now = FailingFeed(), 1_700_000_000.0
    evaluator = AlertEvaluator(feed=feed, hosts=HostTracker())
    for _ in range(4):
        feed.push("web5", now)
        feed.push("web6", now)
        evaluator.evaluate({}, now)
        now += 1
    # A minute without the feed: agents are refused meanwhile, nobody is down for it.
    feed.away = True
    for _ in range(60):
        evaluator.evaluate({}, now)
        now += 1
    feed.away = False
    assert not AlertEvent.objects.exists()
    # Back: web5 catches up at once and stays up; web6 never comes back, so it is down
    # once 3 of its intervals have passed since the values flow again.
    for _ in range(6):
        feed.push("web5", now)
        evaluator.evaluate({}, now)
        now += 1
    fired = list(AlertEvent.objects.filter(kind=AlertEvent.Kind.FIRED).values_list("series", flat=True))
    assert fired == ['host_up{host="web6"}']


def wait_for(predicate, message):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {WAIT_SECONDS} s waiting for {message}")


@pytest.mark.slow
def test_a_real_agent_stopping_raises_one_host_down_and_coming_back_resolves_it(
    rule, web_workers, subprocess_env, tmp_path
):
    (url,) = web_workers(1)
    _token, raw = ApiToken.create("fleet", metric_patterns=["*"])
    supervisor = Supervisor(env=subprocess_env)
    paths = [str(AGENT_DIR), os.environ.get("PYTHONPATH", "")]
    agent_env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    log = open(tmp_path / "agent.log", "ab")  # noqa: SIM115 (the processes hold it)

    def start_agent():
        args = ["--url", url, "--token", raw, "--host", "quiet-1", "--interval", "0.5"]
        return subprocess.Popen(
            [sys.executable, "-m", "livedash_agent", *args, "--buffer-dir", str(tmp_path / "buffer")],
            env=agent_env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )

    agent = start_agent()
    try:
        supervisor.python("collector", "manage.py", "collect_metrics")
        wait_for(lambda: (liveness.seen().get("quiet-1") or {}).get("interval"), "the agent's pace learned")
        assert not AlertEvent.objects.exists()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
        wait_for(host_down_notifications, "the host-down notification")
        fired = list(AlertEvent.objects.filter(kind=AlertEvent.Kind.FIRED).values_list("series", flat=True))
        assert fired == ['host_up{host="quiet-1"}']
        # Still quiet a while longer: nothing more is said.
        time.sleep(3)
        assert len(host_down_notifications()) == 1
        assert AlertEvent.objects.filter(kind=AlertEvent.Kind.FIRED).count() == 1
        agent = start_agent()
        wait_for(lambda: len(host_down_notifications()) == 2, "the resolved notification")
        assert host_down_notifications()[1].title.startswith("Resolved: Host down")
        assert not SeriesAlert.objects.get(rule=rule, series='host_up{host="quiet-1"}').firing
        assert AlertEvent.objects.filter(kind=AlertEvent.Kind.FIRED).count() == 1
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        supervisor.stop()


def test_the_host_down_message_is_said_in_each_viewers_language(rule):
    from notifications.messages import render

    feed, now = Feed(), 1_700_000_000.0
    evaluator = AlertEvaluator(feed=feed, hosts=HostTracker())
    for _ in range(4):
        feed.push("web4", now)
        evaluator.evaluate({}, now)
        now += 1
    for _ in range(10):
        evaluator.evaluate({}, now)
        now += 1
    (told,) = host_down_notifications()
    title, _body = render(told.message_id, told.message_params, "es")
    assert title.startswith("Equipo caído") and 'host="web4"' in title


@pytest.mark.slow
def test_a_real_enrolled_agent_revoked_on_the_page_is_refused_and_raises_no_alert(
    rule, web_workers, subprocess_env, tmp_path, admin_user
):
    from django.test import Client

    (url,) = web_workers(1)
    _enrollment, enroll_raw = ApiToken.create("fleet-enroll", enroll=True)
    supervisor = Supervisor(env={**subprocess_env, "COLLECTOR_HOST": "the-collector"})
    paths = [str(AGENT_DIR), os.environ.get("PYTHONPATH", "")]
    log_path = tmp_path / "agent.log"
    args = ["--url", url, "--enroll-token", enroll_raw, "--host", "edge-1", "--interval", "0.5"]
    agent = subprocess.Popen(
        [sys.executable, "-m", "livedash_agent", *args, "--buffer-dir", str(tmp_path / "buffer")],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "ab"),  # noqa: SIM115 (the process holds it)
    )
    try:
        supervisor.python("collector", "manage.py", "collect_metrics")
        wait_for(lambda: (liveness.seen().get("edge-1") or {}).get("interval"), "the enrolled agent's pace")
        admin = Client()
        admin.force_login(admin_user)
        assert admin.post("/hosts/revoke/", {"host": "edge-1"}).status_code == 302
        revoked_at = time.time()
        # The worker refuses the agent's next pushes, which the agent drops.
        wait_for(lambda: "refused" in log_path.read_text(), "the agent told its pushes are refused")
        assert "401" in log_path.read_text()

        def collector_went_on():
            heard = (liveness.seen().get("the-collector") or {}).get("heard") or 0
            return heard > revoked_at + 5 and "edge-1" not in liveness.seen()

        # Well past 3 of the agent's intervals, as the collector itself tells.
        wait_for(collector_went_on, "the collector to judge for a while after the revocation")
        assert not AlertEvent.objects.filter(series='host_up{host="edge-1"}').exists()
        assert host_down_notifications() == []
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        supervisor.stop()


def test_host_up_is_watched_only_by_rules_that_name_it(rule):
    from alerts.models import AlertRule

    every_metric = AlertRule.objects.create(
        name="anything of web3 low", match='{host="web3"}', comparison="below", threshold=5, sustain_seconds=0
    )
    feed, now = Feed(), 1_700_000_000.0
    evaluator = AlertEvaluator(feed=feed, hosts=HostTracker())
    for _ in range(6):
        feed.push("web3", now)  # cpu 10: in range for that rule; host_up 1 would not be
        evaluator.evaluate({}, now)
        now += 1
    assert not SeriesAlert.objects.filter(rule=every_metric).exists()
