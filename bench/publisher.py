"""The publisher process: the product's public publish API, called at a steady rate.

It runs in its own process with Django set up from the bench environment, as a
team's script or worker would. Each event is `publish_metric(name, seq, ts=now)`:
the value is the sequence number (loss and duplicates are counted by it) and `ts`
is the send time (latency is receive time minus it).
"""

import time

PROGRESS_PUBLISHED = 0


def publish_steadily(publish, events, rate, progress, deadline_slack=5.0):
    """Call `publish(seq, sent_at)` `events` times at `rate` per second, on a fixed schedule.

    The schedule is absolute (start + seq / rate), so one slow call does not
    slow every later one down; returns the publish errors by message.
    """
    errors = {}
    started = time.monotonic()
    for seq in range(events):
        delay = started + seq / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            publish(seq, time.time())
        except Exception as exc:  # counted and reported: a failed publish is a lost event
            reason = f"{type(exc).__name__}: {exc}"[:200]
            errors[reason] = errors.get(reason, 0) + 1
        progress[PROGRESS_PUBLISHED] += 1
    return {
        "published": events - sum(errors.values()),
        "errors": errors,
        "elapsed": time.monotonic() - started,
    }


def metric_publisher(name):
    from dashboard.live import publish_metric

    def publish(seq, sent_at):
        publish_metric(name, seq, ts=sent_at)

    return publish


def dashboard_broadcaster(name):
    """The product's WebSocket broadcast: a group_send to every dashboard through the channel layer.

    The product sends no metric values over its WebSocket (data flows one way, over
    SSE), so the WebSocket peer carries the same events through the broadcast the
    product does use for every dashboard: `presence.update` to the `dashboard`
    group, whose handler forwards the list as is (`{"type": "presence", "online": [...]}`).
    """
    import asyncio

    from channels.layers import get_channel_layer

    from dashboard.control import events
    from dashboard.groups import DASHBOARD_GROUP

    layer = get_channel_layer()
    loop = asyncio.new_event_loop()  # one loop for the run: the layer keeps its connection per loop

    def publish(seq, sent_at):
        message = events.presence_update([{"name": name, "value": seq, "ts": sent_at}])
        loop.run_until_complete(layer.group_send(DASHBOARD_GROUP, message))

    return publish


def selected_batch_publisher(name, series, batch, groups):
    """`publish_metrics` of `batch` points a call over `series` labelled series (bench.selected):
    point `v` (its value) is series `v % series`, whose `group` label is `v % groups`."""
    from dashboard.live import publish_metrics

    def publish(seq, sent_at):
        first = seq * batch
        points = [
            (name, value, sent_at, {"group": f"g{value % groups:03d}", "host": f"h{value % series:05d}"})
            for value in range(first, first + batch)
        ]
        publish_metrics(points)

    return publish


PUBLISHERS = {
    "publish_metric": metric_publisher,
    "dashboard_broadcast": dashboard_broadcaster,
    "selected_batches": selected_batch_publisher,
}


def publisher_main(pipe, progress, env=None):
    """Entry point of the publisher process (multiprocessing target); `env` is added to its
    environment before Django reads its settings (GRIP_URL for the Pushpin path)."""
    import os
    import signal

    import django

    os.environ.update(env or {})
    # Ctrl-C reaches the whole process group; the orchestrator does the stopping.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    django.setup()
    while True:
        command, *args = pipe.recv()
        if command == "quit":
            pipe.send({"ok": True})
            return
        mode, name, events, rate, *options = args
        progress[PROGRESS_PUBLISHED] = 0
        publish = PUBLISHERS[mode](name, **(options[0] if options else {}))
        pipe.send(publish_steadily(publish, events, rate, progress))
