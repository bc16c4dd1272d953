"""`make stack`: the docker-compose topology, natively, for tests and benchmarks.

nginx (Debian's) on 127.0.0.1:$PORT (default 8000) load-balances two web
workers (deploy/worker.py) on free ports, and the metrics collector runs beside them, against the
Redis and database that REDIS_URL and DATABASE_URL name. Ctrl-C or SIGTERM
stops them all. With SENTINEL=1 it starts Redis with failover instead (a primary,
a replica and three sentinels, deploy/sentinel.py) and points everything at it.

Integration tests and the benchmark start the same topology with
`start_stack(supervisor, port, env=...)`.
"""

import atexit
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from deploy.sentinel import describe_topology, start_sentinel_topology
from deploy.supervisor import ROOT, Supervisor, free_port, manage, prepare_services, wait_for_port

NGINX_CONFIG_DIR = ROOT / "deploy" / "nginx"
HOST = "127.0.0.1"


class NginxTemplate(Template):
    # nginx variables are written $name, so the placeholders use @name instead.
    delimiter = "@"


@dataclass
class StackInfo:
    base_url: str
    worker_urls: list[str]
    workdir: Path
    processes: dict = field(default_factory=dict)
    pushpin: object = None  # deploy.pushpin.Pushpin when started with grip=True

    @property
    def access_log(self):
        return self.workdir / "access.log"


def nginx_binary():
    # Debian installs nginx in /usr/sbin, which is not on every user's PATH.
    found = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if not found:
        raise RuntimeError("nginx is not installed: `apt-get install nginx-light` (make stack needs it)")
    return found


def port_is_free(port, host=HOST):
    with socket.socket() as sock:
        # nginx binds with SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def max_open_files():
    """The most file descriptors nginx may raise itself to (its workers cannot go past the hard limit)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1048576 if hard == resource.RLIM_INFINITY else min(hard, 1048576)


def render_nginx_config(workdir, port, worker_addresses, events_addresses=None):
    """Write nginx.conf for this stack into workdir (with the shared files in workdir/livedash/)."""
    workdir = Path(workdir)
    shutil.copytree(NGINX_CONFIG_DIR, workdir / "livedash", dirs_exist_ok=True)

    def servers(addresses):
        return "\n".join(f"        server {address} max_fails=1 fail_timeout=5s;" for address in addresses)

    text = NginxTemplate((NGINX_CONFIG_DIR / "stack.conf").read_text()).substitute(
        workdir=workdir,
        listen=f"{HOST}:{port}",
        max_files=max_open_files(),
        worker_servers=servers(worker_addresses),
        events_servers=servers(events_addresses or worker_addresses),
    )
    path = workdir / "nginx.conf"
    path.write_text(text)
    return path


def _output(log_dir, name):
    """Where a child's output goes: a file in log_dir when given, else our own terminal."""
    if log_dir is None:
        return {}
    log = open(Path(log_dir) / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it open)
    return {"stdout": log, "stderr": subprocess.STDOUT}


def _start(supervisor, method, name, *args, log_dir=None, **kwargs):
    output = _output(log_dir, name)
    try:
        return method(name, *args, **output, **kwargs)
    finally:
        if output:
            output["stdout"].close()


def start_stack(
    supervisor,
    port=8000,
    env=None,
    workdir=None,
    workers=2,
    collector=True,
    log_dir=None,
    events_addresses=None,
    grip=False,
):
    """Start web workers, nginx in front of them, and the collector, all under supervisor.

    events_addresses lets an SSE edge (such as Pushpin) take the /events/ route
    instead of the workers; grip=True starts Debian's pushpin in front of the
    workers for /events/ and gives every publisher its GRIP_URL (deploy/pushpin/).
    The database must already be migrated.
    """
    if not port_is_free(port):
        raise RuntimeError(f"port {port} is already in use; set PORT to another one")
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="livedash-stack-"))
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # nginx's worker processes drop root for an unprivileged user, who must still reach these files.
    workdir.chmod(0o755)

    processes = {}
    pushpin = None
    if grip:
        from deploy.pushpin import Pushpin

        # Planned first: workers and the collector publish to it from their first event.
        pushpin = Pushpin(workdir / "pushpin")
        env = {**(env or {}), "GRIP_URL": pushpin.grip_url}
    worker_ports = [free_port() for _ in range(workers)]
    for index, worker_port in enumerate(worker_ports, start=1):
        name = f"web{index}"
        processes[name] = _start(supervisor, supervisor.worker, name, worker_port, env=env, log_dir=log_dir)
    for name, worker_port in zip(processes, worker_ports, strict=True):
        wait_for_port(worker_port, process=processes[name])

    worker_addresses = [f"{HOST}:{worker_port}" for worker_port in worker_ports]
    if pushpin is not None:
        output = _output(log_dir, "pushpin")
        try:
            pushpin.start(supervisor, worker_addresses, **output)
        finally:
            if output:
                output["stdout"].close()
        processes["pushpin"] = pushpin.process
        events_addresses = [f"{HOST}:{pushpin.ports.http}"]
    config = render_nginx_config(workdir, port, worker_addresses, events_addresses)
    nginx = [nginx_binary(), "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")]
    processes["nginx"] = _start(supervisor, supervisor.start, "nginx", nginx, env=env, log_dir=log_dir)
    wait_for_port(port, process=processes["nginx"])

    if collector:
        processes["collector"] = _start(
            supervisor,
            supervisor.python,
            "collector",
            "manage.py",
            "collect_metrics",
            env=env,
            log_dir=log_dir,
        )

    return StackInfo(
        base_url=f"http://{HOST}:{port}",
        worker_urls=[f"http://{address}" for address in worker_addresses],
        workdir=workdir,
        processes=processes,
        pushpin=pushpin,
    )


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    port = int(os.environ.get("PORT", "8000"))
    if manage("check") != 0:
        return 1
    supervisor = Supervisor()
    with tempfile.TemporaryDirectory(prefix="livedash-stack-") as workdir:
        try:
            topology = None
            if env_flag("SENTINEL"):
                topology = start_sentinel_topology(supervisor, Path(workdir) / "redis", restart=True)
                # Every process from here on, the release steps too, finds Redis through them.
                os.environ.update(topology.env)
                supervisor.env.update(topology.env)
            if not prepare_services(supervisor):
                supervisor.stop()
                return 1
            stack = start_stack(supervisor, port=port, workdir=workdir, grip=env_flag("GRIP"))
        except BaseException:
            supervisor.stop()
            raise
        print(
            f"livedash stack: nginx on {stack.base_url}/ -> workers {', '.join(stack.worker_urls)}, "
            f"plus the collector; nginx logs in {workdir}  (Ctrl-C stops it)"
            + (f"\n/events/ goes through Pushpin on {stack.pushpin.url}" if stack.pushpin else "")
            + (f"\n{describe_topology(topology)}" if topology else ""),
            flush=True,
        )
        return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main())
