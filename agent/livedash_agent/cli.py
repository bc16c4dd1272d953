"""`livedash-agent`: the command line."""

import argparse
import logging
import math
import os
import signal
import socket
import sys
import time

from livedash_agent import __version__
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
    if not args.url or not args.token:
        parser().error("--url and --token are required (or LIVEDASH_URL and LIVEDASH_TOKEN)")
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


def run(args):
    directory = args.buffer_dir or default_directory()
    max_samples = max(1, math.ceil(args.buffer_hours * 3600 / args.interval))
    try:
        buffer = DiskBuffer(directory, max_samples)
    except (BufferBusy, OSError) as error:
        logger.error("%s", error)
        return 1
    agent = Agent(
        sampler=HostSampler(),
        buffer=buffer,
        sender=Sender(args.url, args.token, user_agent=f"livedash-agent/{__version__}"),
        host=args.host,
        interval=args.interval,
    )

    def shut_down(signum, _frame):
        logger.info("%s: stopping after the current sample or request", signal.Signals(signum).name)
        agent.stop()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
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
        agent.run()
        logger.info("stopped; %d sample(s) wait in the buffer for the next start", len(buffer))
    finally:
        buffer.close()
    return 0
