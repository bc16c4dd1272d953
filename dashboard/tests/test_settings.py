import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def run_check(**env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"}
    }
    # Not the .env a `make run` in this folder may have written.
    base["ENV_FILE"] = os.devnull
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_value(expression, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"}
    }
    # Not the .env a `make run` in this folder may have written.
    base["ENV_FILE"] = os.devnull
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); "
        f"django.setup(); from django.conf import settings; print({expression})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_it_defaults_to_sqlite_in_the_project_folder():
    assert settings_value("settings.DATABASES['default']['NAME']", DEBUG="1") == str(ROOT / "db.sqlite3")


def test_it_runs_sqlite_in_wal_mode():
    assert "journal_mode=WAL" in settings_value(
        "settings.DATABASES['default']['OPTIONS']['init_command']", DEBUG="1"
    )


def test_it_reads_postgres_from_database_url():
    out = settings_value(
        "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME']",
        DEBUG="1",
        DATABASE_URL="postgres://u@db:5432/livedash",
    )
    assert out == "django.db.backends.postgresql livedash"


def test_it_defaults_redis_url_and_feeds_both_redis_users():
    out = settings_value(
        "settings.REDIS_URL, settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['address']",
        DEBUG="1",
    )
    assert out == "redis://127.0.0.1:6379/0 redis://127.0.0.1:6379/0"


def test_it_keeps_no_redis_settings_of_its_own_for_the_event_stream():
    # Storage and pub/sub use REDIS_URL's shared pool; the library's own Redis
    # settings would start its unused listener and mislead whoever reads them.
    out = settings_value(
        "hasattr(settings, 'EVENTSTREAM_REDIS'), hasattr(settings, 'EVENTSTREAM_STORAGE_CONNECTION')",
        DEBUG="1",
    )
    assert out == "False False"


def test_it_uses_the_redis_channel_layer():
    from channels_redis.pubsub import RedisPubSubChannelLayer
    from django.utils.module_loading import import_string

    backend = settings_value("settings.CHANNEL_LAYERS['default']['BACKEND']", DEBUG="1")
    assert issubclass(import_string(backend), RedisPubSubChannelLayer)


def test_it_requires_secret_key_without_debug():
    result = run_check(DEBUG="0", ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"DEBUG": "1", "REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"DEBUG": "1", "REDIS_SENTINELS": "a:26379,b", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"DEBUG": "1", "REDIS_SENTINELS": "a:70000", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"DEBUG": "1", "REDIS_SENTINELS": "a:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"DEBUG": "1", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"DEBUG": "1", "CSRF_TRUSTED_ORIGINS": "example.org"}, "CSRF_TRUSTED_ORIGINS"),
        ({"DEBUG": "0", "SECRET_KEY": "x" * 60}, "ALLOWED_HOSTS"),
        ({"DEBUG": "1", "METRICS_RETENTION_HOURS": "soon"}, "METRICS_RETENTION_HOURS"),
        ({"DEBUG": "1", "API_MAX_BODY_BYTES": "10MB"}, "API_MAX_BODY_BYTES"),
        ({"DEBUG": "1", "API_MAX_POINTS": "0"}, "API_MAX_POINTS"),
        ({"DEBUG": "1", "API_TOKEN_REQUESTS_PER_SECOND": "-1"}, "API_TOKEN_REQUESTS_PER_SECOND"),
        ({"DEBUG": "1", "API_TOKEN_POINTS_PER_SECOND": "lots"}, "API_TOKEN_POINTS_PER_SECOND"),
        ({"DEBUG": "1", "EMAIL_PORT": "smtp"}, "EMAIL_PORT"),
        ({"DEBUG": "1", "EMAIL_PORT": "70000"}, "EMAIL_PORT"),
        ({"DEBUG": "1", "EMAIL_USE_TLS": "sometimes"}, "EMAIL_USE_TLS"),
        ({"DEBUG": "1", "DEFAULT_FROM_EMAIL": "not an address"}, "DEFAULT_FROM_EMAIL"),
        ({"DEBUG": "1", "GRIP_URL": "ftp://pushpin:5561?key=k"}, "GRIP_URL"),
        ({"DEBUG": "1", "GRIP_URL": "http://?key=k"}, "GRIP_URL"),
        ({"DEBUG": "1", "DELIVERY_TIMEOUT": "0"}, "DELIVERY_TIMEOUT"),
        ({"DEBUG": "1", "AUDIT_RETENTION_DAYS": "forever"}, "AUDIT_RETENTION_DAYS"),
        ({"DEBUG": "1", "COLLECTOR_HOST": "h" * 257}, "COLLECTOR_HOST"),
        ({"DEBUG": "1", "COLLECTOR_HOST": "web\x1b1"}, "COLLECTOR_HOST"),
        # Without its key any Grip-Sig passes as Pushpin's: production refuses to start.
        (
            {
                "DEBUG": "0",
                "SECRET_KEY": "x" * 60,
                "ALLOWED_HOSTS": "a.org",
                "GRIP_URL": "http://pushpin:5561",
            },
            "GRIP_URL",
        ),
        (
            {
                "DEBUG": "0",
                "SECRET_KEY": "x" * 60,
                "ALLOWED_HOSTS": "a.org",
                "GRIP_URL": "http://p:5561?key=",
            },
            "GRIP_URL",
        ),
    ],
)
def test_it_names_the_bad_variable_in_one_line(env, name):
    result = run_check(**env)
    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_production_settings_pass_check_deploy():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": "k" * 30 + "-production-secret-" + "z" * 20,
            "ALLOWED_HOSTS": "dash.example.org",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mail_goes_to_the_console_without_email_host_and_over_smtp_with_it():
    assert settings_value("settings.EMAIL_BACKEND", DEBUG="1").endswith("console.EmailBackend")
    smtp = "(settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.DEFAULT_FROM_EMAIL)"
    assert (
        settings_value(
            smtp,
            DEBUG="1",
            EMAIL_HOST="mail.example.org",
            EMAIL_PORT="1025",
            DEFAULT_FROM_EMAIL="ops@example.org",
        )
        == "('django.core.mail.backends.smtp.EmailBackend', 'mail.example.org', 1025, 'ops@example.org')"
    )


def check_deploy(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": "k" * 30 + "-production-secret-" + "z" * 20,
            "ALLOWED_HOSTS": "dash.example.org",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_passes_grip_with_a_strong_key():
    result = check_deploy(GRIP_URL="http://pushpin:5561?key=" + "k3y" * 16)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("key", ["changeme", "short-key"])
def test_check_deploy_refuses_a_guessable_grip_key(key):
    result = check_deploy(GRIP_URL=f"http://pushpin:5561?key={key}")
    assert result.returncode != 0
    assert "livedash.E002" in result.stdout + result.stderr


def test_check_deploy_refuses_grip_without_a_key_even_in_debug():
    result = check_deploy(DEBUG="1", GRIP_URL="http://pushpin:5561")
    assert "livedash.E001" in result.stdout + result.stderr


def test_it_reads_the_env_file_for_what_the_environment_does_not_set(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DEBUG=1\nREDIS_PREFIX=from-the-file\nMETRICS_RETENTION_HOURS=7\n")
    shown = "settings.REDIS_PREFIX, settings.METRICS_RETENTION_HOURS, settings.DEBUG"
    result = settings_value(shown, ENV_FILE=str(dotenv), REDIS_PREFIX="from-the-environment")
    assert result == "from-the-environment 7 True"


def test_it_reads_history_tiers_finest_first():
    assert (
        settings_value("settings.HISTORY_TIERS", DEBUG="1")
        == "[(10, 604800), (60, 2678400), (900, 31536000)]"
    )
    assert settings_value("settings.HISTORY_TIERS", DEBUG="1", HISTORY_TIERS="30s:2d, 1h:2y") == (
        "[(30, 172800), (3600, 63072000)]"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("10", "STEP:RETENTION pairs"),
        ("10s:7x", "STEP:RETENTION pairs"),
        ("0s:7d", "STEP:RETENTION pairs"),
        ("1h:10m", "retention must be at least the step"),
        ("1m:7d,10s:31d", "finest first"),
        ("10s:31d,1m:7d", "finest first"),
    ],
)
def test_it_refuses_malformed_history_tiers_in_one_line(value, problem):
    result = run_check(DEBUG="1", HISTORY_TIERS=value)
    assert result.returncode != 0
    assert "HISTORY_TIERS" in result.stderr and problem in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_malformed_log_level_stops_start_up_in_one_line():
    result = run_check(DEBUG="1", LOG_LEVEL="loud")
    assert result.returncode != 0
    assert "LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_log_level_is_read_whatever_its_case():
    assert settings_value("settings.LOG_LEVEL", DEBUG="1", LOG_LEVEL="Warning") == "WARNING"


def test_every_variable_is_read_through_a_helper():
    """The module docstring's promise: an environment read outside the env* helpers
    would skip their one-line errors."""
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    helpers = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("env")
    ]
    inside = {id(node) for helper in helpers for node in ast.walk(helper)}
    reads = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and id(node) not in inside
    ]
    assert reads == [], f"config/settings.py reads the environment outside its helpers at lines {reads}"


def test_mail_credentials_keep_their_spaces_and_unset_text_takes_its_default():
    shown = "repr(settings.EMAIL_HOST_PASSWORD), settings.REDIS_PREFIX, settings.GRIP_URL"
    shown += ", repr(settings.EMAIL_HOST)"
    out = settings_value(shown, DEBUG="1", EMAIL_HOST_PASSWORD=" pass word ", REDIS_PREFIX="  ", GRIP_URL=" ")
    assert out == "' pass word ' livedash None ''"


def test_the_collector_host_is_the_machine_unless_set():
    import socket

    assert settings_value("settings.COLLECTOR_HOST", DEBUG="1") == socket.gethostname()
    assert settings_value("settings.COLLECTOR_HOST", DEBUG="1", COLLECTOR_HOST=" web1 ") == "web1"
