"""Redis with failover, natively: a primary, one replica and three Redis Sentinels on
free local ports (`make stack SENTINEL=1`, and the failover test).

The sentinels agree (quorum 2 of 3) that the primary is gone, promote the replica
and tell every client that asks; livedash's clients ask them (REDIS_SENTINELS). The
data servers append to a file in the topology's folder, so one that is started
again comes back with what it had, never empty: an empty primary would be copied
over its replica.
"""

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.supervisor import free_port, redis_server_binary, redis_server_command, wait_for_port

HOST = "127.0.0.1"
MASTER_NAME = "livedash"


def sentinel_command(config_path):
    """Debian's redis-sentinel (package redis-sentinel), else redis-server in sentinel mode."""
    found = shutil.which("redis-sentinel")
    if found:
        return [found, str(config_path)]
    return [redis_server_binary(), str(config_path), "--sentinel"]


def sentinel_config(port, primary_port, workdir, down_after_ms, failover_timeout_ms, password=None):
    """A sentinel's config file: it rewrites it as the topology changes, so one each.
    With a password, the sentinels take the data servers' (as livedash presents it to both)."""
    lines = [
        f"port {port}",
        f"bind {HOST}",
        f"dir {workdir}",
        f"sentinel monitor {MASTER_NAME} {HOST} {primary_port} 2",
        f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
        f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
    ]
    if password:
        lines += [f"requirepass {password}", f"sentinel auth-pass {MASTER_NAME} {password}"]
    return "\n".join([*lines, ""])


@dataclass
class SentinelTopology:
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]
    password: str | None = None
    processes: dict = field(default_factory=dict)

    @property
    def env(self):
        """What every livedash process needs to find the primary through the sentinels."""
        return {
            "REDIS_SENTINELS": ",".join(f"{HOST}:{port}" for port in self.sentinel_ports),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }


def describe_topology(topology):
    first_sentinel = topology.sentinel_ports[0]
    return (
        f"Redis with failover: primary {HOST}:{topology.primary_port}, "
        f"replica {HOST}:{topology.replica_port}, sentinels {topology.env['REDIS_SENTINELS']}; "
        f"`redis-cli -p {first_sentinel} sentinel get-master-addr-by-name {MASTER_NAME}` names the primary"
    )


def _data_server(port, workdir, *extra):
    folder = Path(workdir) / f"redis-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    return [*redis_server_command(port), "--dir", str(folder), "--appendonly", "yes", *extra]


def start_sentinel_topology(
    supervisor,
    workdir,
    down_after_ms=5000,
    failover_timeout_ms=60000,
    restart=False,
    output=None,
    password=None,
):
    """Start the primary, the replica (once it has synced) and three sentinels under
    supervisor, all on 127.0.0.1. restart=True: the supervisor starts a data server
    or a sentinel again when it dies (a restarted primary rejoins as a replica).
    password: every server and sentinel requires it (livedash finds it in REDIS_URL)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    output = output or {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    topology = SentinelTopology(free_port(), free_port(), [free_port() for _ in range(3)], password)
    auth = ("--requirepass", password, "--masterauth", password) if password else ()

    def listening(port):
        return lambda process: wait_for_port(port, process=process)

    primary = supervisor.start(
        f"redis-primary-{topology.primary_port}",
        _data_server(topology.primary_port, workdir, *auth),
        restart=restart,
        ready=listening(topology.primary_port),
        **output,
    )
    replica = supervisor.start(
        f"redis-replica-{topology.replica_port}",
        _data_server(topology.replica_port, workdir, *auth, "--replicaof", HOST, str(topology.primary_port)),
        restart=restart,
        ready=listening(topology.replica_port),
        **output,
    )
    topology.processes = {"primary": primary, "replica": replica}
    wait_until_replicating(topology.replica_port, password)
    for index, port in enumerate(topology.sentinel_ports, start=1):
        config = workdir / f"sentinel-{port}.conf"
        config.write_text(
            sentinel_config(
                port, topology.primary_port, workdir, down_after_ms, failover_timeout_ms, password
            )
        )
        topology.processes[f"sentinel{index}"] = supervisor.start(
            f"redis-sentinel-{port}",
            sentinel_command(config),
            restart=restart,
            ready=listening(port),
            **output,
        )
    wait_until_sentinels_agree(topology)
    return topology


def wait_until_replicating(replica_port, password=None, timeout=30.0):
    import redis

    client = redis.Redis(host=HOST, port=replica_port, password=password, socket_timeout=2)
    deadline = time.monotonic() + timeout
    while client.info("replication").get("master_link_status") != "up":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replica on {replica_port} did not sync within {timeout:.0f}s")
        time.sleep(0.1)


def wait_until_sentinels_agree(topology, timeout=30.0):
    """Until every sentinel knows the replica and the two others: only then can they
    vote a failover."""
    import redis

    deadline = time.monotonic() + timeout
    for port in topology.sentinel_ports:
        client = redis.Redis(host=HOST, port=port, password=topology.password, socket_timeout=2)
        while True:
            state = client.sentinel_master(MASTER_NAME)
            if state["num-slaves"] >= 1 and state["num-other-sentinels"] >= 2:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"sentinel {port} did not see the replica and its peers in time")
            time.sleep(0.1)
