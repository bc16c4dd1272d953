"""Scrape targets end to end: real Prometheus endpoints (livedash's own /metrics on a real
web worker, small servers on free ports), scraped into labelled series through the
normal publish path, failures stored on the target, the series limits applied, the
collector process scraping on its own, and the admin's form."""

import time

import pytest

from api.models import ApiToken
from audit.models import AuditEntry
from dashboard import selectors, seriesindex
from deploy.supervisor import Supervisor, free_port
from scrape.models import ScrapeTarget
from scrape.scraper import Scraper, scrape
from scrape.tests.expositions import Endpoint

WAIT = 20.0


def wait_for(predicate, timeout=WAIT, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


def found(*texts):
    """{series id: last value} of the live series the selectors match."""
    answer, _ = seriesindex.find(selectors.selection(list(texts)))
    return {item["id"]: item["last"][1] for item in answer}


def target(url, job="app", token="", **fields):
    row = ScrapeTarget(job=job, url=url, **fields)
    row.set_bearer_token(token)
    row.full_clean()
    row.save()
    return row


def test_it_scrapes_livedash_own_metrics_from_a_real_worker(web_workers, redis_url):
    (base,) = web_workers(1)
    _, raw = ApiToken.create("prometheus", scrape=True)
    row = target(f"{base}/metrics", job="livedash", token=raw, labels={"env": "test"})
    instance = f"127.0.0.1:{base.rsplit(':', 1)[1]}"

    outcome = scrape(row)

    assert outcome.up and outcome.error == "", outcome.error
    row.refresh_from_db()
    assert (row.last_up, row.last_error) == (True, "")
    assert row.last_samples > 0 and row.last_scrape_at is not None
    labels = f'env="test",instance="{instance}",job="livedash"'
    assert found("up") == {f"up{{{labels}}}": 1}
    assert found("scrape_samples_scraped") == {f"scrape_samples_scraped{{{labels}}}": row.last_samples}
    # Counters under their sample names, labelled with the target's labels.
    names = {seriesid.partition("{")[0] for seriesid in found('{job="livedash"}')}
    assert {
        "livedash_ingest_points_total",
        "livedash_events_delivered_total",
        "livedash_live_series",
    } <= names
    assert not [name for name in names if name.endswith("_created")]
    assert all(f'instance="{instance}"' in seriesid for seriesid in found('{job="livedash"}'))


def test_a_token_without_the_scrape_scope_makes_the_target_down_with_the_http_error(web_workers, redis_url):
    (base,) = web_workers(1)
    _, raw = ApiToken.create("ingest-only", metric_patterns=["*"])
    row = target(f"{base}/metrics", job="livedash", token=raw)

    outcome = scrape(row)

    assert not outcome.up
    row.refresh_from_db()
    assert row.last_up is False
    assert row.last_error.startswith("HTTP 403")
    assert row.last_samples == 0
    assert list(found('up{job="livedash"}').values()) == [0]
    assert found('{job="livedash",__name__=~"livedash_.*"}') == {}


def test_a_closed_port_is_down_and_the_admin_lists_its_error(admin_client, transactional_db, redis_url):
    port = free_port()  # nothing listens there
    row = target(f"http://127.0.0.1:{port}/metrics", job="gone")

    outcome = scrape(row)

    assert not outcome.up
    row.refresh_from_db()
    assert row.last_up is False
    assert row.last_error.startswith("cannot connect:") and "refused" in row.last_error.lower()
    assert found("up") == {f'up{{instance="127.0.0.1:{port}",job="gone"}}': 0}
    page = admin_client.get("/admin/scrape/scrapetarget/").content.decode()
    assert '<td class="field-state">down</td>' in page and "cannot connect:" in page
    change = admin_client.get(f"/admin/scrape/scrapetarget/{row.pk}/change/").content.decode()
    assert "cannot connect:" in change


@pytest.mark.parametrize(
    ("text", "hold", "max_bytes", "error"),
    [
        ("<html><body>Sign in</body></html>\n", False, 1000, "not a Prometheus text exposition"),
        ("big 1\n" * 100, False, 200, "the exposition is larger than 200 bytes (SCRAPE_MAX_BODY_BYTES)"),
        ("late 1\n", True, 1000, "timed out after 1 s"),
    ],
)
def test_a_target_that_answers_badly_is_down_and_publishes_nothing_of_it(
    transactional_db, redis_url, settings, text, hold, max_bytes, error
):
    settings.SCRAPE_MAX_BODY_BYTES = max_bytes
    with Endpoint(text, hold=hold) as endpoint:
        row = target(endpoint.url, job="bad", interval=1)
        outcome = scrape(row)
    assert not outcome.up and outcome.published == 0
    row.refresh_from_db()
    assert row.last_up is False and row.last_error.startswith(error)
    assert set(found('{job="bad"}')) == {
        f'{name}{{instance="{endpoint.url.split("/")[2]}",job="bad"}}'
        for name in ("up", "scrape_duration_seconds", "scrape_samples_scraped")
    }
    assert list(found('up{job="bad"}').values()) == [0]


EXPOSITION = """\
# HELP http_requests Requests handled.
# TYPE http_requests counter
http_requests_total{code="200",job="theirs"} 1027
http_requests_created{code="200",job="theirs"} 1.7e9
# HELP latency_seconds Request latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 3
latency_seconds_bucket{le="+Inf"} 5
latency_seconds_sum 1.5
latency_seconds_count 5
latency_seconds_created 1.7e9
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} NaN
rpc_seconds_sum 0
rpc_seconds_count 0
# TYPE job:queue_depth:max gauge
job:queue_depth:max 7
# TYPE a_name_far_too_long_for_livedash_because_it_runs_past_sixty_four_characters gauge
a_name_far_too_long_for_livedash_because_it_runs_past_sixty_four_characters 1
"""


def test_counters_histograms_and_summaries_become_series_named_as_prometheus_stores_them(
    transactional_db, redis_url
):
    with Endpoint(EXPOSITION) as endpoint:
        row = target(endpoint.url, job="svc", labels={"env": "prod"})
        outcome = scrape(row)
    instance = endpoint.url.split("/")[2]
    common = f'env="prod",instance="{instance}",job="svc"'
    assert outcome.up
    assert found('{job="svc",__name__!~"up|scrape_.*"}') == {
        # The sample's own `job` is kept as `exported_job`; the target's wins.
        f'http_requests_total{{code="200",env="prod",exported_job="theirs",{common[11:]}}}': 1027,
        f'latency_seconds_bucket{{{common},le="0.1"}}': 3,
        f'latency_seconds_bucket{{{common},le="+Inf"}}': 5,
        f"latency_seconds_sum{{{common}}}": 1.5,
        f"latency_seconds_count{{{common}}}": 5,
        f"rpc_seconds_sum{{{common}}}": 0,
        f"rpc_seconds_count{{{common}}}": 0,
        f"job_queue_depth_max{{{common}}}": 7,
    }
    # The NaN quantile is skipped quietly; the long name is skipped and said.
    row.refresh_from_db()
    assert row.last_samples == 8
    assert row.last_error.startswith("skipped 1 sample(s): metric name must be at most 64 characters")
    assert "a_name_far_too_long" in row.last_error


def test_a_target_exposing_too_many_series_is_cut_to_the_limit_and_the_error_says_so(
    transactional_db, redis_url, settings
):
    settings.MAX_SERIES_PER_METRIC = 10
    lines = ["# TYPE hits counter"] + [f'hits_total{{path="/p{n:02d}"}} {n}' for n in range(30)]
    with Endpoint("\n".join(lines) + "\n") as endpoint:
        row = target(endpoint.url, job="noisy")
        first = scrape(row)
        second = scrape(row)

    assert first.up and first.published == 10
    assert len(found("hits_total")) == 10
    row.refresh_from_db()
    assert row.last_up is True and row.last_samples == 10
    assert row.last_error.startswith("cut: 20 of 30 series not published")
    assert "MAX_SERIES_PER_METRIC (10" in row.last_error
    # The next scrape keeps the series it had, and is cut the same way.
    assert second.published == 10 and set(found("hits_total")) == set(found("hits_total"))
    assert found('up{job="noisy"}') == {f'up{{instance="{endpoint.url.split("/")[2]}",job="noisy"}}': 1}


def test_the_scraper_never_waits_for_a_scrape_and_runs_at_most_its_concurrency_at_once(
    transactional_db, redis_url
):
    with Endpoint("held 1\n", hold=True) as endpoint:
        rows = [target(endpoint.url, job=f"slow{n}", interval=30) for n in range(5)]
        scraper = Scraper(concurrency=2)
        try:
            started_at = time.monotonic()
            started = scraper.step()
            assert time.monotonic() - started_at < 1.0
            assert {t.pk for t in started} == {r.pk for r in rows}
            wait_for(lambda: endpoint.open_now == 2, message="two scrapes held")
            # While they hang, the next steps start nothing again and return at once.
            assert scraper.step() == []
            assert scraper.in_flight() == {r.pk for r in rows}
            endpoint.release()
            wait_for(lambda: not scraper.in_flight(), message="every scrape done")
        finally:
            scraper.stop()
    assert endpoint.most_open == 2 and endpoint.requests == 5
    assert set(ScrapeTarget.objects.values_list("last_up", flat=True)) == {True}


def test_the_collector_process_scrapes_enabled_targets_with_their_bearer_token(subprocess_env, redis_url):
    with Endpoint("# TYPE queue_depth gauge\nqueue_depth 42\n") as endpoint:
        row = target(endpoint.url, job="queue", token="s3cret-token", interval=1)
        off = target(endpoint.url, job="disabled", enabled=False)
        supervisor = Supervisor(env=subprocess_env)
        supervisor.python("collector", "manage.py", "collect_metrics")
        try:
            wait_for(lambda: found("queue_depth"), message="the scraped series")
            wait_for(lambda: endpoint.requests >= 2, message="a second scrape, one interval later")
        finally:
            supervisor.stop()
    assert found("queue_depth") == {f'queue_depth{{instance="{endpoint.url.split("/")[2]}",job="queue"}}': 42}
    assert set(endpoint.authorizations) == {"Bearer s3cret-token"}
    row.refresh_from_db()
    off.refresh_from_db()
    assert (row.last_up, row.last_error) == (True, "")
    assert off.last_scrape_at is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "Enter an http:// or https:// URL."),
        ("ftp://example.org/metrics", "Enter an http:// or https:// URL."),
        ("http://user:pw@example.org/metrics", "Put credentials in the bearer token"),
    ],
)
def test_the_admin_form_refuses_a_bad_url_and_saves_nothing(admin_client, url, message):
    response = admin_client.post(
        "/admin/scrape/scrapetarget/add/",
        {"job": "app", "url": url, "interval": 15, "labels": "{}", "enabled": "on"},
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ScrapeTarget.objects.exists()


def test_the_admin_form_refuses_labels_livedash_sets_and_bad_intervals(admin_client):
    fields = {"job": "app", "url": "http://127.0.0.1:9100/metrics", "interval": 15, "enabled": "on"}
    response = admin_client.post("/admin/scrape/scrapetarget/add/", {**fields, "labels": '{"job": "x"}'})
    assert "The label &#x27;job&#x27; is set by livedash" in response.content.decode()
    response = admin_client.post("/admin/scrape/scrapetarget/add/", {**fields, "labels": "{}", "interval": 0})
    assert "greater than or equal to 1" in response.content.decode()
    assert not ScrapeTarget.objects.exists()


def test_the_admin_keeps_the_bearer_token_but_never_shows_it_back(admin_client):
    fields = {"job": "app", "url": "http://127.0.0.1:9100/metrics", "interval": 15, "labels": "{}"}
    response = admin_client.post(
        "/admin/scrape/scrapetarget/add/", {**fields, "enabled": "on", "bearer_token": "tok-very-secret"}
    )
    assert response.status_code == 302
    row = ScrapeTarget.objects.get()
    assert row.bearer_token() == "tok-very-secret"
    assert "tok-very-secret" not in row.sealed_bearer_token
    change_url = f"/admin/scrape/scrapetarget/{row.pk}/change/"
    page = admin_client.get(change_url).content.decode()
    assert "tok-very-secret" not in page and "set (hidden)" in page
    # Saved again without a token: the stored one stays; then removed on request.
    assert admin_client.post(change_url, {**fields, "interval": 30}).status_code == 302
    row.refresh_from_db()
    assert (row.interval, row.bearer_token(), row.enabled) == (30, "tok-very-secret", False)
    assert admin_client.post(change_url, {**fields, "clear_bearer_token": "on"}).status_code == 302
    row.refresh_from_db()
    assert row.bearer_token() == ""
    # The audit log says the token changed, never what it is.
    entries = list(AuditEntry.objects.filter(action__startswith="scrapetarget."))
    assert [entry.action for entry in entries].count("scrapetarget.changed") == 2
    assert not [entry for entry in entries if "tok-very-secret" in str(entry.before) + str(entry.after)]
