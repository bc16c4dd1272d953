"""Celery signal hooks: task runs, failures and durations by task name.

`connect()` in the worker (e.g. in the module that creates the Celery app) hooks
`task_prerun`, `task_postrun` and `task_failure`. It takes `url`, `token` and
`app`, or reads them from Django's settings (`LIVEDASH_URL`, `LIVEDASH_TOKEN`,
`LIVEDASH_APP`) when Django is configured, else from the environment variables
of the same names.

Series (labels `app` and `task`, the task's registered name):
- `celery_task_runs`: tasks finished per second (successes and failures)
- `celery_task_failures{exception}`: tasks failed per second
- `celery_task_ms_p50`, `_p95`, `_max`: run time of the finished tasks
"""

import os
import threading
import time

from livedash_client.recorder import DEFAULT_INTERVAL, get_recorder

# Start times of tasks running now; a task whose postrun never came (a killed worker
# child) must not grow it for ever.
MAX_RUNNING = 10_000


def _exception_label(exception):
    kind = type(exception)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _task_name(task, sender):
    return getattr(task or sender, "name", None) or "unknown"


class TaskHooks:
    """The receivers, callable with the arguments Celery's signals send."""

    def __init__(self, recorder, clock=time.perf_counter):
        self.recorder = recorder
        self.clock = clock
        self._started = {}
        self._lock = threading.Lock()

    SIGNALS = ("task_prerun", "task_postrun", "task_failure")

    def connect(self, signals):
        # weak=False: the hooks live as long as the worker, not as long as the caller's frame.
        for name in self.SIGNALS:
            getattr(signals, name).connect(getattr(self, name), weak=False)

    def disconnect(self):
        from celery import signals

        for name in self.SIGNALS:
            getattr(signals, name).disconnect(getattr(self, name))

    def task_prerun(self, sender=None, task_id=None, task=None, **_):
        with self._lock:
            if len(self._started) >= MAX_RUNNING:
                self._started.pop(next(iter(self._started)))
            self._started[task_id] = self.clock()

    def task_postrun(self, sender=None, task_id=None, task=None, **_):
        with self._lock:
            started = self._started.pop(task_id, None)
        labels = {"task": _task_name(task, sender)}
        self.recorder.count("celery_task_runs", labels)
        if started is not None:
            self.recorder.observe("celery_task_ms", labels, (self.clock() - started) * 1000)

    def task_failure(self, sender=None, task_id=None, exception=None, **_):
        labels = {"task": _task_name(None, sender), "exception": _exception_label(exception)}
        self.recorder.count("celery_task_failures", labels)


def _setting(name, default=None):
    try:
        from django.conf import settings

        if settings.configured and hasattr(settings, name):
            return getattr(settings, name)
    except ImportError:
        pass
    return os.environ.get(name, default)


def connect(url=None, token=None, app=None, interval=None, recorder=None):
    """Hook the Celery signals; returns the hooks. Raises ValueError when URL or token is missing."""
    from celery import signals

    if recorder is None:
        url = url or _setting("LIVEDASH_URL")
        token = token or _setting("LIVEDASH_TOKEN")
        if not url or not token:
            raise ValueError("livedash_client.celery.connect() needs LIVEDASH_URL and LIVEDASH_TOKEN")
        app = app or _setting("LIVEDASH_APP", "celery")
        interval = float(interval or _setting("LIVEDASH_PUSH_INTERVAL", DEFAULT_INTERVAL))
        recorder = get_recorder(url, token, app, interval)
    hooks = TaskHooks(recorder)
    hooks.connect(signals)
    return hooks
