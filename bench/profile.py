"""`--profile`: py-spy on the server processes during a phase, summarised to what dominates.

py-spy samples a running process from outside (no code change, no restart).
The raw (collapsed-stack) output is kept next to the results; the summary lists
the functions with the most samples on the stack (inclusive) and at the top
(self), which is what docs/performance.md quotes.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

SAMPLE_RATE = 50
TOP = 15
# Frames every sample passes through (event loop, thread pool, entry points): they
# say nothing about where the time goes, so the inclusive ranking leaves them out.
PLUMBING = (
    "threading.py",
    "concurrent/futures/",
    "<frozen runpy>",
    "daphne/cli.py",
    "daphne/__main__.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "twisted/internet/asyncioreactor.py",
    "twisted/python/log.py",
    "twisted/python/context.py",
    "asgiref/sync.py",
    "asgiref/current_thread_executor.py",
)
# The product's own code, ranked on its own so the summary points at what we can change.
PROJECT = ("dashboard/", "notifications/", "config/")


def py_spy():
    """The py-spy binary next to this interpreter (the venv), else one on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.recorders = []

    def start(self, label, pids):
        binary = py_spy()
        if binary is None:
            raise RuntimeError("--profile needs py-spy (it is in requirements-dev.txt)")
        for pid in pids:
            output = self.folder / f"{label}-{pid}.txt"
            args = [binary, "record", "--format", "raw", "--gil", "--nonblocking"]
            args += ["--rate", str(SAMPLE_RATE), "--pid", str(pid), "--output", str(output)]
            process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.recorders.append((process, output))

    def stop(self):
        """Stop recording (py-spy writes its file on SIGINT); returns the summary."""
        outputs = []
        for process, _ in self.recorders:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
        for process, output in self.recorders:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            outputs.append(output)
        self.recorders = []
        return summarise([o for o in outputs if o.exists()])


def summarise(paths):
    """Inclusive and self sample shares of the hottest functions over collapsed-stack files."""
    inclusive, own, project, total = {}, {}, {}, 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = [_function(frame) for frame in stack.split(";")]
            for frame in set(frames):
                if any(part in frame for part in PLUMBING) or frame == "Server.run (daphne/server.py)":
                    continue
                inclusive[frame] = inclusive.get(frame, 0) + samples
                if any(f"({part}" in frame for part in PROJECT):
                    project[frame] = project.get(frame, 0) + samples
            own[frames[-1]] = own.get(frames[-1], 0) + samples
    if not total:
        return {"samples": 0, "inclusive": [], "self": [], "project_inclusive": []}

    def top(counts):
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:TOP]
        return [{"function": name, "share": round(count / total, 3)} for name, count in ranked]

    return {
        "samples": total,
        "files": [p.name for p in paths],
        "inclusive": top(inclusive),
        "self": top(own),
        "project_inclusive": top(project),
    }


def _function(frame):
    # "handle (django/core/handlers/asgi.py:160)" -> "handle (django/core/handlers/asgi.py)":
    # lines split one function into many entries.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name
