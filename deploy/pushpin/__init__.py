"""Pushpin, the GRIP edge that holds SSE connections so the workers don't have to.

`docker-compose.yml` mounts `pushpin.conf` and `routes` from this folder as they
are. Native runs (`make stack GRIP=1`, the tests, the benchmark) start Debian's
`pushpin` package from a copy rendered into a temporary folder, with every port
free and private to that run, so several stacks (and a system Pushpin) never
collide. Only what has to differ per run is replaced; the limits and services
stay exactly as committed.
"""

import atexit
import configparser
import contextlib
import http.client
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from deploy.supervisor import free_ports, wait_for_port

RUNDIR_MAX = 60
HERE = Path(__file__).resolve().parent
CONFIG_TEMPLATE = HERE / "pushpin.conf"


def pushpin_binary():
    found = shutil.which("pushpin")
    if not found:
        raise RuntimeError("pushpin is not installed: `apt-get install pushpin` (Debian/Ubuntu)")
    return found


def routes_line(workers):
    """One route sending everything to every worker ("host:port" each)."""
    return "* " + " ".join(workers) + "\n"


@dataclass
class PushpinPorts:
    http: int
    publish: int
    push_in: int
    push_in_sub: int
    command: int

    @classmethod
    def free(cls, http=None):
        """Five distinct ports (`http` one of them when given): Pushpin binds them all."""
        chosen = [port for port in free_ports(5) if port != http]
        http = http or chosen.pop()
        publish, push_in, push_in_sub, command = chosen[:4]
        return cls(http=http, publish=publish, push_in=push_in, push_in_sub=push_in_sub, command=command)


def render(directory, workers, ports, sig_key, bind="127.0.0.1"):
    """Write pushpin.conf and routes into directory; return the config path."""
    directory = Path(directory)
    rundir = directory / "run"
    if len(str(rundir)) > RUNDIR_MAX:
        # Unix socket paths are limited to 107 bytes; keep Pushpin's short.
        rundir = Path(tempfile.mkdtemp(prefix="pushpin-"))
        atexit.register(shutil.rmtree, rundir, ignore_errors=True)
    rundir.mkdir(parents=True, exist_ok=True)
    (directory / "log").mkdir(parents=True, exist_ok=True)
    config = configparser.ConfigParser(interpolation=None, strict=True)
    config.optionxform = str  # keep Pushpin's key names as written
    config.read(CONFIG_TEMPLATE)
    config["global"]["rundir"] = str(rundir)
    config["runner"]["logdir"] = str(directory / "log")
    config["runner"]["http_port"] = f"{bind}:{ports.http}"
    config["proxy"]["sig_key"] = sig_key
    handler = config["handler"]
    handler["push_in_http_addr"] = "127.0.0.1"
    handler["push_in_http_port"] = str(ports.publish)
    handler["push_in_spec"] = f"tcp://127.0.0.1:{ports.push_in}"
    handler["push_in_sub_specs"] = f"tcp://127.0.0.1:{ports.push_in_sub}"
    handler["command_spec"] = f"tcp://127.0.0.1:{ports.command}"
    path = directory / "pushpin.conf"
    with path.open("w") as out:
        config.write(out)
    (directory / "routes").write_text(routes_line(workers))
    return path


START_ATTEMPTS = 3


@dataclass
class Pushpin:
    """One Pushpin, planned before it starts: workers need its GRIP_URL to start first."""

    directory: Path
    ports: PushpinPorts = field(default_factory=PushpinPorts.free)
    sig_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    bind: str = "127.0.0.1"
    process: subprocess.Popen | None = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def grip_url(self):
        """GRIP_URL for the workers: where to publish, and the key that proves a request came via us."""
        return f"http://127.0.0.1:{self.ports.publish}?" + urlencode({"key": self.sig_key})

    def start(self, supervisor, workers, **popen):
        """Start in front of workers ("host:port" each); returns once clients and publishers can connect."""
        config = render(self.directory, workers, self.ports, self.sig_key, bind=self.bind)
        for attempt in range(1, START_ATTEMPTS + 1):
            self.process = supervisor.start(
                "pushpin", [pushpin_binary(), "--config", str(config), "--merge-output"], **popen
            )
            try:
                wait_for_port(self.ports.http, process=self.process)
                wait_for_port(self.ports.publish, process=self.process)
                self.wait_until_proxying()
                return self
            except RuntimeError:
                # Seen once in many runs on a busy machine: the runner exited 1 during
                # start-up (cause not pinned down); the same config started again is fine.
                if attempt == START_ATTEMPTS:
                    raise
                time.sleep(1.0)
        return self

    def wait_until_proxying(self, timeout=15.0):
        """Return once a request through Pushpin gets an answer from behind it.

        Its client port opens before its proxy, handler and zurl are wired together;
        seen once in CI, a request in that moment was dropped without an answer."""
        deadline = time.monotonic() + timeout
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", self.ports.http, timeout=2.0)
            try:
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                return  # any status: the path through Pushpin works
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise TimeoutError("Pushpin took connections but answered none") from None
                time.sleep(0.1)
            finally:
                connection.close()

    def pids(self):
        """Pushpin's runner and the services it started (condure, zurl, proxy, handler)."""
        found = [self.process.pid]
        config = configparser.ConfigParser(interpolation=None)
        config.read(Path(self.directory) / "pushpin.conf")
        for pidfile in Path(config["global"]["rundir"]).glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                found.append(int(pidfile.read_text().strip()))
        return found
