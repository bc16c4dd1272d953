"""The agent's two loops: sampling on a steady clock, and sending what the buffer holds.

They are separate threads so a slow or unreachable livedash never delays a sample:
the sampler stores each sample in the disk buffer and wakes the sender; the sender
posts the oldest samples first, in batches, and backs off while livedash is away.
"""

import logging
import threading
import time

from livedash_agent.lineprotocol import encode_sample
from livedash_agent.sender import Backoff, Result

logger = logging.getLogger("livedash_agent")

# Samples per request while catching up: small enough that a batch whose fate a crash
# leaves unknown (see buffer.py) is a few minutes of samples, large enough to catch up fast.
BATCH_SAMPLES = 60


class Agent:
    def __init__(
        self,
        *,
        sampler,
        buffer,
        sender,
        host,
        interval,
        backoff=None,
        batch_samples=BATCH_SAMPLES,
        clock=time.monotonic,
        wallclock_ns=time.time_ns,
    ):
        self.sampler = sampler
        self.buffer = buffer
        self.sender = sender
        self.tags = {"host": host}
        self.interval = interval
        self.backoff = backoff or Backoff()
        self.batch_samples = batch_samples
        self.clock = clock
        self.wallclock_ns = wallclock_ns
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._away_since = None
        self._sender_thread = None

    def stop(self):
        """Safe from a signal handler: the current sample or request finishes, then run() returns."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self):
        return self._stopping.is_set()

    def sample_once(self):
        lines = encode_sample(self.sampler.sample(), self.wallclock_ns(), self.tags)
        self.buffer.append(lines)
        self._wake.set()
        return lines

    def run(self, max_samples=None, wait=None):
        """Sample every `interval` seconds until stop() (or until `wait(seconds)`, which sleeps
        between samples, returns True); returns the number of samples taken."""
        wait = wait or self._stopping.wait
        self._sender_thread = threading.Thread(
            target=self.send_loop, name="livedash-agent-sender", daemon=True
        )
        self._sender_thread.start()
        taken = 0
        next_at = self.clock() + self.interval
        try:
            while not wait(max(0.0, next_at - self.clock())) and not self.stopping:
                try:
                    self.sample_once()
                except Exception:  # a disk full, a psutil oddity: the next tick tries again
                    logger.exception("could not take or store a sample")
                taken += 1
                if max_samples is not None and taken >= max_samples:
                    break
                next_at += self.interval
                if next_at < self.clock():
                    # A stall (a suspended machine): go on from now rather than in a burst.
                    next_at = self.clock()
        finally:
            self.stop()
            # A request in flight gets its answer, so its batch is committed either way.
            self._sender_thread.join(self.sender.timeout + 5)
        return taken

    def send_loop(self):
        while not self.stopping:
            self._wake.clear()
            batch = self.buffer.begin_send(self.batch_samples)
            if batch is None:
                self._wake.wait()
                continue
            self._deliver(batch)

    def _deliver(self, batch):
        outcome = self.sender.push(batch.lines)
        if outcome.result is Result.DELIVERED:
            self.buffer.sent(batch)
            if self._away_since is not None:
                logger.info(
                    "livedash answers again after %.0f s; sending the %d buffered sample(s)",
                    self.clock() - self._away_since,
                    len(self.buffer) + len(batch.samples),
                )
                self._away_since = None
            self.backoff.reset()
        elif outcome.result is Result.REFUSED:
            # Sending it again would be refused again, and would hold up every later sample.
            self.buffer.sent(batch)
            logger.error("livedash refused %d sample(s), dropped: %s", len(batch.samples), outcome.detail)
        else:
            self.buffer.not_sent(batch)
            delay = self.backoff.next_delay(outcome.retry_after)
            if self._away_since is None:
                self._away_since = self.clock()
                logger.warning("%s; samples wait in the buffer, next try in %.1f s", outcome.detail, delay)
            else:
                logger.info(
                    "still failing (%s); %d sample(s) buffered, next try in %.1f s",
                    outcome.detail,
                    len(self.buffer),
                    delay,
                )
            self._stopping.wait(delay)
