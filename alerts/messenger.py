"""The alert messenger: a thread of the collector that sends each alert group's message
at the moment its wait ends.

The evaluator decides on the collector's ticks, a second or so apart, and a tick may
be busy reading thousands of published values at the moment a group's `group_wait`
(or `group_interval`, or `repeat_interval`) runs out. Left to the ticks, that message
would go out on the next one, up to a tick and a half late; from here it goes out
when it is due, whatever the tick is doing (the evaluator's lock is not held while
it reads the values).
"""

import logging
import time

from django.db import close_old_connections

from dashboard.background import BackgroundThread

logger = logging.getLogger(__name__)

# How often the messenger looks for a group that a tick has started meanwhile; the
# groups' waits are seconds long, so it learns of them well before they are due.
LOOK_EVERY_SECONDS = 0.5


class AlertMessenger(BackgroundThread):
    name = "alert-messenger"

    def __init__(self, evaluator, clock=time.time, look_every=LOOK_EVERY_SECONDS):
        super().__init__()
        self.evaluator = evaluator
        self.clock = clock
        self.look_every = look_every

    def run(self):
        while not self._stopping.is_set():
            try:
                due_at = self.evaluator.next_message_at()
                wait = self.look_every if due_at is None else min(self.look_every, due_at - self.clock())
                if wait > 0:
                    self._stopping.wait(wait)
                    continue
                self.evaluator.send_due_messages(self.clock())
                # This thread's own connection: none may outlive a dropped server.
                close_old_connections()
                due_at = self.evaluator.next_message_at()
                if due_at is not None and due_at <= self.clock():
                    # Not sent (the database away; the evaluator logged why): a pause
                    # before the next try, not a tight loop.
                    self._stopping.wait(self.look_every)
            except Exception:
                logger.exception("the alert messenger failed; it goes on")
                self._stopping.wait(self.look_every)
