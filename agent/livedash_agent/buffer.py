"""The agent's disk buffer: samples wait here until livedash has answered 2xx for them.

Every sample goes through it, whether livedash is up or not, so a sample exists on
disk before any attempt to send it, and leaves it only once sent (or refused for
good). SQLite (in the standard library) gives the atomic commits: a crash at any
moment leaves the buffer as it was after the last commit.

The commit points of a send: the batch is first marked *in flight* (commit), then
posted; a 2xx deletes it and clears the mark (one commit). A known failure (no
connection, 5xx, 429) clears the mark and keeps the batch for the next try. If the
agent dies between the mark and the answer, nobody knows whether livedash stored
the batch: the next start drops it with a warning instead of sending it a second
time, so no sample ever arrives twice.

Bounded: at most `max_samples` samples (the `--buffer-hours` worth of them); a new
sample beyond that drops the oldest ones, with a warning.
"""

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("livedash_agent")

FILENAME = "buffer.sqlite3"
LOCKNAME = "buffer.lock"
# A buffer that keeps dropping warns at most this often, with the count since the last warning.
DROP_WARNING_EVERY = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (seq INTEGER PRIMARY KEY AUTOINCREMENT, lines TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inflight (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1), first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL
);
"""


class BufferBusy(RuntimeError):
    """Another agent already uses this buffer directory."""


@dataclass(frozen=True)
class Batch:
    first_seq: int
    last_seq: int
    samples: list  # each a list of line protocol lines

    @property
    def lines(self):
        return [line for sample in self.samples for line in sample]


class DiskBuffer:
    def __init__(self, directory, max_samples, clock=time.monotonic):
        if max_samples < 1:
            raise ValueError(f"the buffer must hold at least one sample, got {max_samples}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_samples = max_samples
        self._clock = clock
        self._lock_file = self._take_directory()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.directory / FILENAME, check_same_thread=False, isolation_level=None, timeout=30
        )
        # WAL with synchronous=FULL: each commit is on disk when it returns, and readers
        # and the writer do not block each other.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self.dropped = 0
        self._dropped_unwarned = 0
        self._last_drop_warning = None
        self._forget_unknown_batch()

    def _take_directory(self):
        """One agent per buffer: two would send each other's samples."""
        handle = open(self.directory / LOCKNAME, "a+")  # noqa: SIM115 (held open for the process' life)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise BufferBusy(f"another livedash-agent uses the buffer directory {self.directory}") from None
        return handle

    @contextlib.contextmanager
    def _transaction(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _forget_unknown_batch(self):
        with self._transaction() as db:
            row = db.execute("SELECT first_seq, last_seq FROM inflight").fetchone()
            if row is None:
                return
            gone = db.execute("DELETE FROM samples WHERE seq BETWEEN ? AND ?", row).rowcount
            db.execute("DELETE FROM inflight")
        if gone:
            logger.warning(
                "the agent stopped while sending %d sample(s); livedash may or may not have them, "
                "so they are not sent again (no sample is ever sent twice)",
                gone,
            )

    def __len__(self):
        with self._lock:
            return self._db.execute("SELECT count(*) FROM samples").fetchone()[0]

    def append(self, lines):
        """Store one sample (its lines); drops the oldest samples beyond the bound."""
        if not lines:
            return
        with self._transaction() as db:
            db.execute("INSERT INTO samples (lines) VALUES (?)", ("\n".join(lines),))
            excess = db.execute("SELECT count(*) FROM samples").fetchone()[0] - self.max_samples
            dropped = 0
            if excess > 0:
                dropped = db.execute(
                    "DELETE FROM samples WHERE seq IN (SELECT seq FROM samples ORDER BY seq LIMIT ?)",
                    (excess,),
                ).rowcount
        if dropped:
            self._count_drop(dropped)

    def _count_drop(self, dropped):
        self.dropped += dropped
        self._dropped_unwarned += dropped
        now = self._clock()
        if self._last_drop_warning is None or now - self._last_drop_warning >= DROP_WARNING_EVERY:
            logger.warning(
                "buffer full (%d samples): dropped the oldest %d sample(s) that livedash never got",
                self.max_samples,
                self._dropped_unwarned,
            )
            self._last_drop_warning = now
            self._dropped_unwarned = 0

    def begin_send(self, max_samples):
        """The oldest samples (at most `max_samples`), in order, marked in flight; None when empty."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, lines FROM samples ORDER BY seq LIMIT ?", (max_samples,)
            ).fetchall()
            if not rows:
                return None
            first, last = rows[0][0], rows[-1][0]
            db.execute(
                "INSERT OR REPLACE INTO inflight (only_row, first_seq, last_seq) VALUES (1, ?, ?)",
                (first, last),
            )
        return Batch(first, last, [text.split("\n") for _, text in rows])

    def sent(self, batch):
        """livedash has the batch (or refused it for good): it leaves the buffer."""
        with self._transaction() as db:
            db.execute("DELETE FROM samples WHERE seq BETWEEN ? AND ?", (batch.first_seq, batch.last_seq))
            db.execute("DELETE FROM inflight")

    def not_sent(self, batch):
        """livedash surely does not have the batch: it stays, for the next try."""
        with self._transaction() as db:
            db.execute("DELETE FROM inflight")

    def close(self):
        with self._lock:
            self._db.close()
        self._lock_file.close()


def default_directory(environ=os.environ):
    """systemd's StateDirectory= when run by the unit, else the user's XDG state folder."""
    if environ.get("STATE_DIRECTORY"):
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    state_home = environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "livedash-agent"
