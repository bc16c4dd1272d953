"""docker-compose.yml, the Dockerfile and the nginx config, checked without a Docker engine.

No Docker runs on these machines, so the compose file is read as data and every
command, file and setting it refers to is checked against the project itself.
"""

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml
from django.core.management import get_commands

from conftest import ROOT
from deploy.stack import nginx_binary

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ["migrate", "web1", "web2", "collector", "scrape-token"]
WORKERS = ["web1", "web2"]
NGINX_DIR = ROOT / "deploy" / "nginx"


def env_example_names():
    """Every variable .env.example names, set or shown commented out."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def settings_variable_names():
    """Every environment variable config/settings.py reads."""
    text = (ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r"(?:env\w*\(|environ\.get\()\s*\"([A-Z][A-Z0-9_]*)\"", text))


def nginx_locations(path):
    """{location path: body} of an nginx file, with `include livedash/...` inlined."""
    text = inline_includes(path.read_text())
    return dict(re.findall(r"location\s+(\S+)\s*\{([^}]*)\}", text))


def inline_includes(text):
    def include(match):
        return inline_includes((NGINX_DIR / match.group(1)).read_text())

    return re.sub(r"include\s+livedash/(\S+);", include, text)


def directives(body):
    """The directives of a block as normalised lines without comments: 'proxy_buffering off'."""
    lines = (line.split("#", 1)[0].strip().rstrip(";") for line in body.splitlines())
    return {re.sub(r"\s+", " ", line) for line in lines if line}


def nginx_seconds(value):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = re.fullmatch(r"(\d+)([smhd]?)", value).groups()
    return int(number) * units.get(unit or "s", 1)


def manage_commands_in(command):
    """Names of the manage.py commands a compose command runs (directly or through a script)."""
    if command[:2] == ["python", "manage.py"]:
        return [command[2]]
    if command[0] == "sh":
        script = (ROOT / command[1]).read_text()
        return re.findall(r"^\s*python manage\.py (\S+)", script, flags=re.MULTILINE)
    return []


def test_it_defines_the_production_services():
    # An SSE edge (Pushpin) may join them; these are the ones every deployment has.
    assert {"postgres", "redis", "migrate", "web1", "web2", "collector", "nginx"} <= set(SERVICES)


def test_it_keeps_postgres_on_a_named_volume():
    postgres = SERVICES["postgres"]
    assert postgres["image"].startswith("postgres:16")
    volume, target = postgres["volumes"][0].split(":")[:2]
    assert target == "/var/lib/postgresql/data"
    assert volume in COMPOSE["volumes"], "a named volume, not a host folder"


def test_it_healthchecks_postgres_and_redis():
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert SERVICES["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_it_healthchecks_the_workers_on_healthz():
    for name in WORKERS:
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[1:] == ["python", "deploy/healthcheck.py"]
    assert "/healthz" in (ROOT / "deploy" / "healthcheck.py").read_text()


def test_it_starts_workers_and_collector_only_after_the_release_step():
    for name in ["web1", "web2", "collector"]:
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    migrate = SERVICES["migrate"]["depends_on"]
    assert {migrate[s]["condition"] for s in ("postgres", "redis")} == {"service_healthy"}
    assert SERVICES["migrate"]["restart"] == "no", "a one-shot must not be restarted after it succeeds"


def test_it_starts_nginx_once_both_workers_are_healthy():
    depends = SERVICES["nginx"]["depends_on"]
    assert {name: depends[name]["condition"] for name in WORKERS} == dict.fromkeys(WORKERS, "service_healthy")


def test_it_publishes_nothing_but_nginx_on_8000():
    published = {name: service.get("ports", []) for name, service in SERVICES.items()}
    assert published.pop("nginx") == ["8000:80"]
    # The monitoring profile's Prometheus UI, on the host's loopback only.
    assert published.pop("prometheus") == ["127.0.0.1:9090:9090"]
    # The demo's mail catcher page, on the host's loopback only.
    assert published.pop("mailpit") == ["127.0.0.1:8025:8025"]
    # The `oidc` profile's test provider, on the host's loopback only.
    assert published.pop("idp") == ["127.0.0.1:9000:9000"]
    assert all(ports == [] for ports in published.values()), published


def test_alert_emails_go_to_the_mail_catcher_unless_env_names_a_server():
    assert SERVICES["mailpit"]["image"].startswith("axllent/mailpit:")
    environment = SERVICES["collector"]["environment"]
    assert environment["EMAIL_HOST"] == "${EMAIL_HOST:-mailpit}"
    assert environment["EMAIL_PORT"] == "${EMAIL_PORT:-1025}"


def test_it_runs_two_web_workers_on_the_asgi_application():
    for name in WORKERS:
        command = SERVICES[name]["command"]
        assert command[:3] == ["python", "-m", "deploy.worker"]
        assert command[3:] == ["--host", "0.0.0.0", "--port", "8000"]  # noqa: S104 (inside the container)
        assert importlib.import_module("deploy.worker").main is not None
        # Only the proxies on the compose network are believed about the client's address.
        assert "*" not in SERVICES[name]["environment"]["FORWARDED_ALLOW_IPS"]


def test_every_manage_py_command_it_runs_exists():
    commands = get_commands()
    used = [name for service in APP_SERVICES for name in manage_commands_in(SERVICES[service]["command"])]
    assert {"migrate", "ensure_superuser", "collect_metrics"} <= set(used)
    missing = [name for name in used if name not in commands]
    assert missing == [], f"compose runs manage.py commands that do not exist: {missing}"


def test_every_file_it_refers_to_exists():
    assert (ROOT / SERVICES["migrate"]["command"][1]).is_file()
    for mount in SERVICES["nginx"]["volumes"]:
        source = mount.split(":")[0]
        assert (ROOT / source).exists(), source
    for included in re.findall(r"include\s+livedash/(\S+);", (NGINX_DIR / "compose.conf").read_text()):
        assert (NGINX_DIR / included).is_file(), included


def test_it_takes_secrets_from_the_env_file_never_from_the_compose_file():
    for name in APP_SERVICES:
        assert SERVICES[name]["env_file"] == ".env"
    secrets = {
        (name, key): value
        for name, service in SERVICES.items()
        for key, value in service.get("environment", {}).items()
        if re.search(r"SECRET|PASSWORD", key)
    }
    assert ("postgres", "POSTGRES_PASSWORD") in secrets and ("web1", "SECRET_KEY") in secrets
    for (_, key), value in secrets.items():
        assert value.startswith(f"${{{key}:?"), f"{key} must come from .env, required: {value}"
    database_url = SERVICES["web1"]["environment"]["DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in database_url


def test_env_example_documents_every_variable():
    documented = env_example_names()
    interpolated = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    required = {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"}
    missing = (settings_variable_names() | interpolated | required) - documented
    assert missing == set(), f".env.example does not mention {sorted(missing)}"


def test_the_configuration_doc_lists_every_setting():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", doc, flags=re.MULTILINE))
    missing = (settings_variable_names() | {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"}) - rows
    assert missing == set(), f"docs/configuration.md's table does not list {sorted(missing)}"


def test_env_example_turns_https_only_settings_off_for_the_http_demo():
    text = (ROOT / ".env.example").read_text()
    for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        assert re.search(rf"^{name}=false$", text, flags=re.MULTILINE), name
    assert re.search(r"^DEBUG=0$", text, flags=re.MULTILINE)
    assert (
        re.search(r"^(SECRET_KEY|POSTGRES_PASSWORD|DJANGO_SUPERUSER_PASSWORD)=\S", text, re.MULTILINE) is None
    )


def test_nginx_passes_the_websocket_upgrade_on_ws():
    ws = directives(nginx_locations(NGINX_DIR / "compose.conf")["/ws/"])
    assert "proxy_set_header Upgrade $http_upgrade" in ws
    assert "proxy_set_header Connection $connection_upgrade" in ws
    assert "proxy_http_version 1.1" in ws
    assert "map $http_upgrade $connection_upgrade {" in (NGINX_DIR / "compose.conf").read_text()


def test_nginx_streams_sse_without_buffering():
    events = directives(nginx_locations(NGINX_DIR / "compose.conf")["/events/"])
    assert "proxy_buffering off" in events
    assert "gzip off" in events
    assert "proxy_http_version 1.1" in events
    timeout = next(d for d in events if d.startswith("proxy_read_timeout "))
    assert nginx_seconds(timeout.split()[1]) >= 3600


def test_nginx_balances_over_both_workers():
    text = (NGINX_DIR / "compose.conf").read_text()
    upstream = re.search(r"upstream livedash \{([^}]*)\}", text).group(1)
    assert re.findall(r"server (\S+?)(?::\d+)?[\s;]", upstream) == WORKERS


def test_nginx_accepts_the_compose_config(tmp_path):
    """`nginx -t` on compose.conf, with the worker host names pointed at this machine."""
    shutil.copytree(NGINX_DIR, tmp_path / "livedash")
    site = (
        (NGINX_DIR / "compose.conf")
        .read_text()
        .replace("web1:", "127.0.0.1:")
        .replace("web2:", "127.0.0.1:")
        .replace("pushpin:", "127.0.0.1:")
    )
    site = site.replace("listen 80;", "listen 127.0.0.1:1;").replace(
        "/dev/stdout", str(tmp_path / "access.log")
    )
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n"
        + "".join(f"{kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi"))
        + "".join(f"{kind}_temp_path {tmp_path}/{kind};\n" for kind in ("uwsgi", "scgi"))
        + "include site.conf;\n}\n"
    )
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def compose_dir(tmp_path):
    """The compose file beside an .env made from .env.example with its secrets filled in."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    # Services built from this repository need their build folder beside it.
    shutil.copytree(ROOT / "deploy" / "pushpin", tmp_path / "deploy" / "pushpin")
    env = (ROOT / ".env.example").read_text()
    env = re.sub(r"^SECRET_KEY=$", "SECRET_KEY=test-only-secret-key", env, flags=re.MULTILINE)
    env = re.sub(r"^POSTGRES_PASSWORD=$", "POSTGRES_PASSWORD=test-only-password", env, flags=re.MULTILINE)
    env = re.sub(r"^REDIS_PASSWORD=$", "REDIS_PASSWORD=test-only-redis-password", env, flags=re.MULTILINE)
    env = re.sub(r"^GRIP_KEY=$", "GRIP_KEY=test-only-grip-key", env, flags=re.MULTILINE)
    (tmp_path / ".env").write_text(env)
    return tmp_path


def docker_compose(directory, *args):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    return subprocess.run(
        [binary, *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )


def test_docker_compose_validates_it(compose_dir):
    result = docker_compose(compose_dir, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_docker_compose_validates_the_monitoring_profile(compose_dir):
    shutil.copytree(ROOT / "deploy" / "prometheus", compose_dir / "deploy" / "prometheus")
    result = docker_compose(compose_dir, "--profile", "monitoring", "config", "-q")
    assert result.returncode == 0, result.stderr
    services = docker_compose(compose_dir, "--profile", "monitoring", "config", "--services")
    assert {"prometheus", "scrape-token"} <= set(services.stdout.split())


def test_docker_compose_names_a_missing_redis_password(compose_dir):
    env = compose_dir / ".env"
    env.write_text(re.sub(r"^REDIS_PASSWORD=.*$", "REDIS_PASSWORD=", env.read_text(), flags=re.MULTILINE))
    result = docker_compose(compose_dir, "config", "-q")
    assert result.returncode != 0
    assert "set REDIS_PASSWORD in .env" in result.stderr


def test_docker_compose_names_a_missing_secret(compose_dir):
    env = compose_dir / ".env"
    env.write_text(
        re.sub(r"^POSTGRES_PASSWORD=.*$", "POSTGRES_PASSWORD=", env.read_text(), flags=re.MULTILINE)
    )
    result = docker_compose(compose_dir, "config", "-q")
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


def dockerfile_instructions():
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [
        line.strip().split(None, 1) for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]


def test_dockerfile_builds_assets_in_a_node_stage_and_runs_slim_python():
    stages = [args for op, args in dockerfile_instructions() if op == "FROM"]
    assert len(stages) == 4
    assert stages[0].startswith("node:") and stages[0].endswith(" AS assets")
    # The translation catalogues are compiled in a stage of their own (gettext stays out).
    assert stages[1].startswith("python:3.11-slim") and stages[1].endswith(" AS messages")
    # The `oidc` profile's test provider, built only when that profile asks for its target.
    assert stages[2].startswith("python:3.11-slim") and stages[2].endswith(" AS idp")
    # The runtime is the last stage: what `docker build .` and the app services get.
    assert stages[3].startswith("python:3.11-slim") and stages[3].endswith(" AS runtime")
    assert "COPY --from=messages" in (ROOT / "Dockerfile").read_text()
    runs = " ".join(args for op, args in dockerfile_instructions() if op == "RUN")
    assert "npm ci" in runs
    assert "node_modules/uplot/dist/uPlot.iife.min.js" in runs
    assert "COPY --from=assets" in (ROOT / "Dockerfile").read_text()


def test_dockerfile_runs_as_an_unprivileged_user():
    users = [args for op, args in dockerfile_instructions() if op == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_bakes_in_no_secret():
    for op, args in dockerfile_instructions():
        if op in ("ENV", "ARG"):
            assert not re.search(r"SECRET|PASSWORD|TOKEN", args), args
    collectstatic = [
        args for op, args in dockerfile_instructions() if op == "RUN" and "collectstatic" in args
    ]
    assert collectstatic and collectstatic[0].startswith("SECRET_KEY=")


def test_dockerfile_serves_a_web_worker_on_8000():
    instructions = dockerfile_instructions()
    assert ["EXPOSE", "8000"] in instructions
    cmd = json.loads(next(args for op, args in instructions if op == "CMD"))
    assert cmd == SERVICES["web1"]["command"]
    assert shlex.join(cmd) == "python -m deploy.worker --host 0.0.0.0 --port 8000"


def test_dockerignore_keeps_secrets_and_local_builds_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", "node_modules", ".git", "db.sqlite3*"} <= ignored


# --- Redis keeps its data and takes a password --------------------------------


def test_redis_appends_to_a_file_on_a_named_volume_and_requires_a_password():
    redis = SERVICES["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert '--requirepass "$$REDIS_PASSWORD"' in command, "the password from .env, never written here"
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?"), "the healthcheck logs in"
    volume, target = redis["volumes"][0].split(":")[:2]
    assert target == "/data" and volume in COMPOSE["volumes"]


def test_the_app_reaches_redis_with_the_password():
    url = SERVICES["web1"]["environment"]["REDIS_URL"]
    assert url.startswith("redis://:${REDIS_PASSWORD:?")
    assert url.endswith("}@redis:6379/0")


# --- the monitoring profile ---------------------------------------------------


def test_prometheus_scrapes_metrics_through_nginx_with_the_token_the_profile_creates():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    token_file = job["authorization"]["credentials_file"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "nginx"

    prometheus, maker = SERVICES["prometheus"], SERVICES["scrape-token"]
    assert prometheus["profiles"] == maker["profiles"] == ["monitoring"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in prometheus["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    token_dir = token_file.rsplit("/", 1)[0]
    assert mounts[token_dir] == maker["volumes"][0].split(":")[0], "the volume the token is written to"
    assert prometheus["depends_on"]["scrape-token"]["condition"] == "service_completed_successfully"
    script = (ROOT / maker["command"][1]).read_text()
    assert re.search(r"python manage\.py create_token .+ --scrape\b", script)
    assert token_file in script
    assert "--metrics" not in script and "--notify" not in script, "a scrape token, nothing more"

    # nginx's private port passes /metrics on with a Host that ALLOWED_HOSTS lists.
    text = (NGINX_DIR / "compose.conf").read_text()
    server = text[text.index(f"listen {port};") :]
    metrics = directives(nginx_locations_in(server)["= /metrics"])
    assert "proxy_pass http://livedash" in metrics
    assert "proxy_set_header Host localhost" in metrics
    allowed = re.search(r"^ALLOWED_HOSTS=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert "localhost" in allowed.group(1).split(",")
    assert port not in " ".join(SERVICES["nginx"]["ports"]), "the scrape port stays private"


def nginx_locations_in(text):
    return dict(re.findall(r"location\s+(= \S+|\S+)\s*\{([^}]*)\}", inline_includes(text)))


def test_the_image_has_a_folder_the_token_volume_can_be_written_to():
    text = (ROOT / "Dockerfile").read_text()
    assert "chown livedash /run/livedash" in text


def test_pushpin_is_keyed_from_the_env_file_never_a_known_key():
    conf = (ROOT / "deploy" / "pushpin" / "pushpin.conf").read_text()
    assert re.search(r"^sig_key=$", conf, flags=re.MULTILINE), "no key committed in pushpin.conf"
    assert "changeme" not in conf
    assert SERVICES["pushpin"]["environment"]["GRIP_KEY"].startswith("${GRIP_KEY:?")
    for name in APP_SERVICES:
        assert SERVICES[name]["environment"]["GRIP_URL"].endswith(
            "?key=${GRIP_KEY:?set GRIP_KEY in .env (see .env.example)}"
        )
    start = (ROOT / "deploy" / "pushpin" / "start.sh").read_text()
    assert "sig_key=$GRIP_KEY" in start and "exit 1" in start


def test_pushpin_start_refuses_to_run_without_a_key(tmp_path):
    conf = tmp_path / "pushpin.conf"
    script = (
        (ROOT / "deploy" / "pushpin" / "start.sh").read_text().replace("/etc/pushpin/pushpin.conf", str(conf))
    )
    conf.write_text("sig_key=\n")
    env = {"PATH": os.environ["PATH"]}
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 1 and "GRIP_KEY is not set" in result.stderr
    result = subprocess.run(
        ["sh", "-c", script],
        env={**env, "GRIP_KEY": "bad key;rm"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 1 and "URL-safe" in result.stderr


# --- the oidc profile ---------------------------------------------------------


def test_docker_compose_validates_the_oidc_profile(compose_dir):
    result = docker_compose(compose_dir, "--profile", "oidc", "config", "-q")
    assert result.returncode == 0, result.stderr
    services = docker_compose(compose_dir, "--profile", "oidc", "config", "--services")
    assert "idp" in services.stdout.split()


def test_the_oidc_profile_serves_the_test_provider_the_env_example_names():
    idp = SERVICES["idp"]
    assert idp["profiles"] == ["oidc"] and idp["build"]["target"] == "idp"
    options = dict(arg.removeprefix("--").split("=", 1) for arg in idp["command"] if arg.startswith("--"))
    assert (ROOT / options["users"]).is_file()
    assert "idp.localhost" in idp["networks"]["default"]["aliases"]
    example = (ROOT / ".env.example").read_text()
    assert f"# OIDC_ISSUER={options['issuer']}" in example
    assert f"# OIDC_CLIENT_ID={options['client-id']}" in example
    assert f"# OIDC_CLIENT_SECRET={options['client-secret']}" in example


# --- the sentinel profile -----------------------------------------------------

SENTINELS = ["sentinel1", "sentinel2", "sentinel3"]


def test_docker_compose_validates_the_sentinel_profile(compose_dir):
    result = docker_compose(compose_dir, "--profile", "sentinel", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_the_sentinel_profile_runs_a_replica_of_redis_and_three_sentinels_watching_it():
    replica = SERVICES["redis-replica"]
    command = " ".join(replica["command"])
    assert replica["profiles"] == ["sentinel"]
    assert "--replicaof redis 6379" in command
    # Either may be the primary after a failover: both require and present the password.
    for data_server in (command, " ".join(SERVICES["redis"]["command"])):
        assert '--requirepass "$$REDIS_PASSWORD"' in data_server
        assert '--masterauth "$$REDIS_PASSWORD"' in data_server
    volumes = set()
    for name in SENTINELS:
        sentinel = SERVICES[name]
        script = " ".join(sentinel["command"])
        assert sentinel["profiles"] == ["sentinel"]
        assert "sentinel monitor livedash redis 6379 2" in script, "quorum 2 of 3"
        assert '"sentinel auth-pass livedash $$REDIS_PASSWORD"' in script
        assert '"requirepass $$REDIS_PASSWORD"' in script, "the app asks them with Redis' password"
        assert sentinel["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?")
        assert script.rstrip().endswith("--sentinel")
        assert "ports" not in sentinel
        volumes.add(sentinel["volumes"][0].split(":")[0])
    assert len(volumes) == 3 and volumes <= set(COMPOSE["volumes"]), "each keeps its own state"


def test_env_example_points_the_app_at_the_profiles_sentinels():
    text = (ROOT / ".env.example").read_text()
    sentinels = re.search(r"^# REDIS_SENTINELS=(\S+)$", text, flags=re.MULTILINE).group(1)
    assert sentinels.split(",") == [f"{name}:26379" for name in SENTINELS]
    assert re.search(r"^# REDIS_SENTINEL_MASTER=livedash$", text, flags=re.MULTILINE)
    assert re.search(r"^# COMPOSE_PROFILES=sentinel$", text, flags=re.MULTILINE)
