"""Work on a thread of its own beside a process's main loop: the collector's delivery
sender, rollup writer, scraper and alert messenger."""

import threading


class BackgroundThread:
    """`start()` runs `run()` on a daemon thread called `name`; `run()` loops until
    `_stopping` is set, which `stop()` does before waiting for the thread."""

    name = "background"

    def __init__(self):
        self._stopping = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=10):
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self):
        raise NotImplementedError
