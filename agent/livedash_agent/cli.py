"""`livedash-agent`: the command line."""

import argparse
import logging
import math
import os
import signal
import socket
import sys
import time

from livedash_agent import __version__, enrollment
from livedash_agent.agent import Agent
from livedash_agent.buffer import BufferBusy, DiskBuffer, default_directory
from livedash_agent.lineprotocol import encode_sample, encode_tags
from livedash_agent.sampling import HostSampler
from livedash_agent.sender import Sender, write_url

logger = logging.getLogger("livedash_agent")

# --once measures over this long, so CPU and network rates cover a real span.
ONCE_WINDOW_SECONDS = 1.0


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
        return value

    return parse


def parser():
    p = argparse.ArgumentParser(
        prog="livedash-agent",
        description="Sample this host's CPU, memory, disk, load, network and processes, and push them "
        "to livedash with the label host. Buffers on disk while livedash cannot be reached.",
    )
    p.add_argument(
        "--url", default=os.environ.get("LIVEDASH_URL"), help="livedash's base URL (or LIVEDASH_URL)"
    )
    p.add_argument(
        "--token",
        default=os.environ.get("LIVEDASH_TOKEN"),
        help="an API token with the metrics scope (or LIVEDASH_TOKEN, which keeps it out of `ps`)",
    )
    p.add_argument(
        "--enroll-token",
        default=os.environ.get("LIVEDASH_ENROLL_TOKEN"),
        help="instead of --token: an enrollment token, traded once for this host's own token, which is "
        "stored in the state folder and reused (or LIVEDASH_ENROLL_TOKEN)",
    )
    p.add_argument("--interval", type=positive(float), default=10.0, help="seconds between samples (10)")
    p.add_argument(
        "--buffer-hours",
        type=positive(float),
        default=24.0,
        help="how many hours of samples to keep on disk while livedash is away (24); older ones are dropped",
    )
    p.add_argument("--buffer-dir", help="where the buffer lives (default: the user's state folder)")
    p.add_argument("--host", default=socket.gethostname(), help="the host label (default: this host's name)")
    p.add_argument("--once", action="store_true", help="print one sample as line protocol and exit")
    p.add_argument("--version", action="version", version=f"livedash-agent {__version__}")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s livedash-agent %(levelname)s %(message)s",
    )
    try:
        if not encode_tags({"host": args.host}):
            raise ValueError("must not be empty")
    except ValueError as error:
        parser().error(f"--host: {error}")
    if args.once:
        return print_once(args.host)
    if not args.url or not (args.token or args.enroll_token):
        parser().error(
            "--url and --token are required (or LIVEDASH_URL and LIVEDASH_TOKEN;"
            " --enroll-token instead of --token)"
        )
    try:
        write_url(args.url)
    except ValueError as error:
        parser().error(f"--url: {error}")
    return run(args)


def print_once(host):
    sampler = HostSampler()
    time.sleep(ONCE_WINDOW_SECONDS)
    for line in encode_sample(sampler.sample(), time.time_ns(), {"host": host}):
        print(line)
    return 0


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_waiter():
    """The main thread's sleep between samples, which ends early on SIGTERM or SIGINT.

    No Python signal handler: one would run in the middle of whatever the main thread
    does, and setting an Event (or logging) from there deadlocks when the main thread
    already holds that lock. The signals are blocked instead (threads started after
    this inherit the mask) and taken synchronously by `sigtimedwait` between samples.
    """
    if not hasattr(signal, "sigtimedwait"):  # macOS: a handler that only sets a flag
        received = []
        for number in STOP_SIGNALS:
            signal.signal(number, lambda signum, _frame: received.append(signum))

        def wait_with_flag(seconds):
            deadline = time.monotonic() + seconds
            while not received and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.25))
            return _stopping_on(received[0]) if received else False

        return wait_with_flag

    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def wait_for_signal(seconds):
        got = signal.sigtimedwait(STOP_SIGNALS, seconds)
        return _stopping_on(got.si_signo) if got else False

    return wait_for_signal


def _stopping_on(signum):
    logger.info("%s: stopping after the current request", signal.Signals(signum).name)
    return True


def run(args):
    directory = args.buffer_dir or default_directory()
    wait = signal_waiter()
    user_agent = f"livedash-agent/{__version__}"
    token = args.token
    if not token:
        try:
            token = enrollment.token_for(args.url, args.enroll_token, args.host, directory, user_agent, wait)
        except (enrollment.EnrollmentRefused, OSError) as error:
            logger.error("%s", error)
            return 1
        if token is None:
            return 0  # stopped while waiting for livedash
    max_samples = max(1, math.ceil(args.buffer_hours * 3600 / args.interval))
    try:
        buffer = DiskBuffer(directory, max_samples)
    except (BufferBusy, OSError) as error:
        logger.error("%s", error)
        return 1
    agent = Agent(
        sampler=HostSampler(),
        buffer=buffer,
        sender=Sender(args.url, token, user_agent=user_agent),
        host=args.host,
        interval=args.interval,
    )

    logger.info(
        "host %s every %g s to %s; buffer %s (%d sample(s) waiting, at most %d)",
        args.host,
        args.interval,
        agent.sender.url,
        directory,
        len(buffer),
        max_samples,
    )
    try:
        agent.run(wait=wait)
        logger.info("stopped; %d sample(s) wait in the buffer for the next start", len(buffer))
    finally:
        buffer.close()
    return 0
