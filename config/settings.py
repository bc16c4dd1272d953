"""livedash settings, all taken from the environment (12-factor).

Every variable is read through a small helper that fails with one line naming
the variable, so a typo in a deployment is a clear start-up error rather than
a traceback or a silently wrong default.
"""

import os
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name, default="", strip=True):
    """Text as given; unset or blank gives `default`. Secrets pass strip=False: their
    spaces are theirs."""
    raw = os.environ.get(name, "")
    return (raw.strip() if strip else raw) or default


# `make run` writes what it chose (DEBUG, DATABASE_URL, REDIS_URL, ...) to .env, so
# commands in another terminal reach the same database and Redis. Variables set in
# the environment win over the file. ENV_FILE names another file.
ENV_FILE = envstr("ENV_FILE", str(BASE_DIR / ".env"))
load_dotenv(ENV_FILE, override=False)


def envbool(name, default):
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0), got {raw!r}")


def envint(name, default, minimum=None):
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def envlist(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


def _duration(text):
    text = text.strip()
    if len(text) < 2 or text[-1] not in DURATION_UNITS or not text[:-1].isdigit() or int(text[:-1]) < 1:
        raise ValueError(text)
    return int(text[:-1]) * DURATION_UNITS[text[-1]]


def envtiers(name, default):
    """Rollup tiers as `STEP:RETENTION,...` (e.g. `10s:7d,1m:31d`), finest first: a list of
    (step seconds, retention seconds). Units s, m, h, d, y."""
    raw = os.environ.get(name, "").strip() or default
    tiers = []
    for item in raw.split(","):
        step, _, retention = item.partition(":")
        try:
            tier = (_duration(step), _duration(retention))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be STEP:RETENTION pairs like 10s:7d,1m:31d (units s, m, h, d, y), got {raw!r}"
            ) from None
        if tier[1] < tier[0]:
            raise ImproperlyConfigured(f"{name}: retention must be at least the step, got {item.strip()!r}")
        if tiers and (tier[0] <= tiers[-1][0] or tier[1] < tiers[-1][1]):
            raise ImproperlyConfigured(
                f"{name}: list tiers finest first, each coarser and kept at least as long, got {raw!r}"
            )
        tiers.append(tier)
    return tiers


def envchoice(name, default, choices):
    raw = os.environ.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(sorted(choices))}, got {raw!r}")
    return raw


def envhostports(name):
    """`host:port,host:port,...` as a list of (host, port); empty when unset."""
    raw = os.environ.get(name, "").strip()
    addresses = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"{name} must be host:port pairs like a:26379,b:26379, got {raw!r}")
        addresses.append((host, int(port)))
    return addresses


def envurl(name, default, schemes):
    """A URL with one of `schemes`; with default None an unset variable gives None."""
    raw = envstr(name, default)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {allowed}, got {raw!r}")
    return raw


DEBUG = envbool("DEBUG", False)

SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set; set it in the environment (or set DEBUG=1 for development)"
        )
    # Development only: a fixed key so sessions survive restarts of `make run`.
    SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is not set; list the host names this site serves")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
for origin in CSRF_TRUSTED_ORIGINS:
    if urlsplit(origin).scheme not in ("http", "https"):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entries must start with http:// or https://, got {origin!r}"
        )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic",
    "django.contrib.staticfiles",
    "channels",
    "django_eventstream",
    "axes",
    "csp",
    "dashboard",
    "notifications",
    "alerts",
    "api",
    # django-ninja serves its Swagger UI from its own static files only when listed here.
    "ninja",
    "audit",
    "boards",
    "accounts",
    "hosts",
    # Prometheus scrape targets, configured in the admin and scraped by the collector.
    "scrape",
    # Sign-in through the company's identity provider (OpenID Connect) and second
    # factors; only their sign-in views are mounted (accounts/urls_identity.py).
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Inside it: its site-wide Referrer-Policy only where this one set none.
    "dashboard.privacy.ShareReferrerPolicy",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions, before common: the language cookie set by /i18n/setlang/ wins,
    # Accept-Language decides until the user picks one.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who changes configuration (admin saves), for the audit log.
    "audit.context.AuditContextMiddleware",
    # "Last seen" and the address of each signed-in session, for /account/sessions/.
    "accounts.middleware.SessionActivityMiddleware",
    # django-allauth keeps its sign-in flow's state (which step of an OIDC or MFA
    # sign-in a request is in) through this.
    "allauth.account.middleware.AccountMiddleware",
    # MFA_REQUIRED: a signed-in user who must have a second factor and has none is led
    # to enrol before any other page.
    "accounts.middleware.MFARequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Inside django-csp's: kiosk pages may be framed by this site's playlists.
    "boards.framing.KioskFraming",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.preferences",
            ],
        },
    },
]

ASGI_APPLICATION = "config.asgi.application"

# Database: SQLite in the project folder unless DATABASE_URL names another.
DATABASE_URL = envurl(
    "DATABASE_URL",
    f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
    {"sqlite", "postgres", "postgresql", "pgsql"},
)


def _database_from_url(url):
    import dj_database_url

    try:
        config = dj_database_url.parse(url, conn_max_age=0, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the collector write while streams and pages read; without it
        # writers hit "database is locked" under load and events go missing.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    return config


DATABASES = {"default": _database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envurl("REDIS_URL", "redis://127.0.0.1:6379/0", {"redis", "rediss", "unix"})
# Every Redis key and pub/sub channel the product owns starts with this, so
# several installations (or test runs) can share one Redis server.
REDIS_PREFIX = envstr("REDIS_PREFIX", "livedash")
# Redis Sentinel: the sentinels name the primary, and every client asks them again
# after a failover. REDIS_URL then says only how to talk to it (password, database
# number, rediss:// for TLS); its host and port are not used. The sentinels take
# the same password.
REDIS_SENTINELS = envhostports("REDIS_SENTINELS")
REDIS_SENTINEL_MASTER = envstr("REDIS_SENTINEL_MASTER")
if bool(REDIS_SENTINELS) != bool(REDIS_SENTINEL_MASTER):
    missing = "REDIS_SENTINEL_MASTER" if REDIS_SENTINELS else "REDIS_SENTINELS"
    raise ImproperlyConfigured(
        f"{missing} is not set: REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together, set both or neither"
    )


def _redis_node_options(url):
    """What REDIS_URL says besides where the server is (Sentinel says that)."""
    from redis.connection import SSLConnection, parse_url

    options = parse_url(url)
    kept = {name: options[name] for name in ("db", "username", "password") if name in options}
    if options.get("connection_class") is SSLConnection:
        kept["ssl"] = True
    return kept


REDIS_NODE_OPTIONS = _redis_node_options(REDIS_URL) if REDIS_SENTINELS else {}


def _channel_layer_host():
    if not REDIS_SENTINELS:
        return {"address": REDIS_URL, "max_connections": 1000}
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return {
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinels": REDIS_SENTINELS,
        # As dashboard.redis asks them: a sentinel that does not answer at once is
        # passed over for the next, never waited on.
        "sentinel_kwargs": {
            "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),
            **({"password": REDIS_NODE_OPTIONS["password"]} if "password" in REDIS_NODE_OPTIONS else {}),
        },
        "max_connections": 1000,
        **REDIS_NODE_OPTIONS,
    }


CHANNEL_LAYERS = {
    "default": {
        # channels_redis' pub/sub layer, telling sockets when their worker lost Redis.
        "BACKEND": "dashboard.control.layer.ResyncingPubSubChannelLayer",
        "CONFIG": {
            "hosts": [_channel_layer_host()],
            "prefix": f"{REDIS_PREFIX}:ws",
        },
    },
}

# Sessions are read on every request, and on every SSE (re)connect: keep them in
# Redis in front of the database. dashboard.sessions guards every cache call, so
# with Redis away sessions (and logins) work from the database alone.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # Under Sentinel the pool class asks the sentinels for the primary instead.
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
        "OPTIONS": {
            "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0,
            "pool_class": "dashboard.redis.SharedConnectionPool",
        },
    },
}
SESSION_ENGINE = "dashboard.sessions"

# Login lockout (django-axes): at most 10 failed logins for one username from one
# client address within 15 minutes; then that pair is refused for 15 minutes, on
# the site's and the admin's login alike. The attempts live in the database (axes'
# database handler), so every worker sees the same count and signing in does not
# depend on Redis. The address is REMOTE_ADDR only, never a header read here: the
# worker fills it from X-Forwarded-For only when the peer is in FORWARDED_ALLOW_IPS
# (nginx), and nginx, the one hop in front of the workers, overwrites that header
# with the address it saw (deploy/nginx/proxy_headers.conf), so a client cannot
# choose its own.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 10
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Identity (docs/sign-in.md): OpenID Connect through django-allauth, configured here
# alone; the provider is offered on the login page when OIDC_ISSUER is set.
OIDC_ISSUER = envurl("OIDC_ISSUER", None, {"http", "https"})
# Plain http only for a provider on this machine (the compose `oidc` demo, tests): tokens
# and the client secret travel to the provider.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
if OIDC_ISSUER and urlsplit(OIDC_ISSUER).scheme == "http" and not DEBUG:
    _issuer_host = urlsplit(OIDC_ISSUER).hostname or ""
    if _issuer_host not in LOOPBACK_HOSTS and not _issuer_host.endswith(".localhost"):
        raise ImproperlyConfigured(
            f"OIDC_ISSUER must be an https:// URL (http only for localhost names), got {OIDC_ISSUER!r}"
        )
OIDC_CLIENT_ID = envstr("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = envstr("OIDC_CLIENT_SECRET", strip=False)
# The button reads "Sign in with <OIDC_PROVIDER_NAME>".
OIDC_PROVIDER_NAME = envstr("OIDC_PROVIDER_NAME", "OpenID Connect")
OIDC_GROUPS_CLAIM = envstr("OIDC_GROUPS_CLAIM", "groups")
if OIDC_ISSUER and not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_ISSUER is set: set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET too")


def envrolemap(name, roles):
    """`idp-group=Role,...` as {idp group: role}; every role one of `roles`."""
    mapping = {}
    for item in envlist(name, []):
        group, sep, role = (part.strip() for part in item.rpartition("="))
        if not sep or not group or role not in roles:
            raise ImproperlyConfigured(
                f"{name} must be idp-group=Role pairs with Role one of {', '.join(roles)}, got {item!r}"
            )
        mapping[group] = role
    return mapping


def _role_names():
    from accounts.roles import ROLES

    return ROLES


OIDC_ROLE_MAP = envrolemap("OIDC_ROLE_MAP", _role_names())
# What an OIDC user whose groups map to no role gets ("none": nothing).
OIDC_DEFAULT_ROLE = envstr("OIDC_DEFAULT_ROLE", "Viewer")
if OIDC_DEFAULT_ROLE != "none" and OIDC_DEFAULT_ROLE not in _role_names():
    raise ImproperlyConfigured(
        f"OIDC_DEFAULT_ROLE must be none or one of {', '.join(_role_names())}, got {OIDC_DEFAULT_ROLE!r}"
    )
# off: no password sign-in at all (the form is gone and a password POST is refused).
LOCAL_LOGIN = envchoice("LOCAL_LOGIN", "on", {"on", "off"}) == "on"
if not LOCAL_LOGIN and not OIDC_ISSUER:
    raise ImproperlyConfigured("LOCAL_LOGIN=off needs OIDC_ISSUER: otherwise nobody could sign in")

SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        # accounts.oidc adds and checks the nonce allauth's provider leaves out.
        "provider_class": "accounts.oidc.NonceCheckingProvider",
        "APPS": (
            [
                {
                    "provider_id": "oidc",
                    "name": OIDC_PROVIDER_NAME,
                    "client_id": OIDC_CLIENT_ID,
                    "secret": OIDC_CLIENT_SECRET,
                    "settings": {"server_url": OIDC_ISSUER, "oauth_pkce_enabled": True},
                }
            ]
            if OIDC_ISSUER
            else []
        ),
    }
}
SOCIALACCOUNT_ADAPTER = "accounts.oidc.IdentityProviderAdapter"
ACCOUNT_ADAPTER = "accounts.oidc.AccountAdapter"
# Users are matched by the issuer's subject only: never by e-mail, so an address at
# the provider (verified or not) can never take over a local account.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_STORE_TOKENS = False
ACCOUNT_EMAIL_VERIFICATION = "none"
# Two accounts may carry one address: the provider's address is not proof of anything here.
ACCOUNT_UNIQUE_EMAIL = False
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]

# Second factors (allauth.mfa): an authenticator app (TOTP) with recovery codes, and
# passkeys. MFA_REQUIRED: who must have one before reaching anything else (off, staff, all).
MFA_REQUIRED = envchoice("MFA_REQUIRED", "off", {"off", "staff", "all"})
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = "livedash"
# Passkeys on a plain-http development site (127.0.0.1) need this; never in production.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
# A passkey alone signs in (it checks the user's PIN or biometrics itself), from the
# login page; not with LOCAL_LOGIN off, where the identity provider is the only way in.
MFA_PASSKEY_LOGIN_ENABLED = LOCAL_LOGIN
# Every second-factor step counts towards django-axes' lockout (accounts/mfa.py).
MFA_FORMS = {
    "authenticate": "accounts.mfa.AuthenticateForm",
    "reauthenticate": "accounts.mfa.ReauthenticateForm",
    "authenticate_webauthn": "accounts.mfa.AuthenticateWebAuthnForm",
    "reauthenticate_webauthn": "accounts.mfa.ReauthenticateWebAuthnForm",
    "add_webauthn": "accounts.mfa.AddWebAuthnForm",
}
# Adding or removing a second factor (or new recovery codes) needs a proof of identity
# this recent: the sign-in itself, or the password, a code or a passkey entered again.
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
# No codes by e-mail (livedash sends no sign-in mail); a provider's user signs in there
# again instead (accounts.oidc.AccountAdapter).
ACCOUNT_REAUTHENTICATION_METHODS = ("password", "mfa")

LANGUAGE_CODE = "en"
# The page speaks these; catalogues live in locale/ (compiled by `make`, never committed).
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# static/vendor/ is filled by `make static` from node_modules (git-ignored).
STATICFILES_DIRS = [BASE_DIR / "static"]
# The manifest storage whatever DEBUG says: `make static` runs with DEBUG=1, and a
# DEBUG=0 start needs the manifest it writes. With DEBUG on, Django's manifest
# storage hands out the plain names, so editing a file needs no collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
}

# Security: on by default, relaxed only for local development.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# An enforced Content-Security-Policy (django-csp) on every page: everything from
# this origin only, no inline script or style, never framed. The page keeps its
# scripts and styles in static files (its config travels as a JSON data block).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
    },
}
if OIDC_ISSUER:
    # "Sign in with ..." posts to livedash, which redirects the form on to the provider:
    # Chromium holds a form's redirects to form-action too.
    _issuer = urlsplit(OIDC_ISSUER)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(f"{_issuer.scheme}://{_issuer.netloc}")
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # nginx says whether the client used HTTPS in X-Forwarded-Proto. No
    # SECURE_PROXY_SSL_HEADER: the web worker (deploy/worker.py) already sets the
    # request's scheme from it, believing only the peers in FORWARDED_ALLOW_IPS.
    # Health checks and Prometheus scrape the workers over the private network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

# Fails in one line like every other setting, rather than deep inside logging's setup.
LOG_LEVEL = envchoice("LOG_LEVEL", "info", {"debug", "info", "warning", "error", "critical"}).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Share-link tokens never reach a log line (dashboard/privacy.py).
    "filters": {"share_tokens": {"()": "dashboard.privacy.MaskShareTokens"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["share_tokens"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers (DEFAULT_LOGGING) would print its records unmasked:
        # every record goes to the one console handler above instead.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}

# django-eventstream: events published from any process are stored in Redis (so
# `Last-Event-ID` can resume) and published on its pub/sub, both through the one
# shared REDIS_URL pool with prefixed keys (why Redis: see dashboard/storage.py).
EVENTSTREAM_CHANNELMANAGER_CLASS = "dashboard.stream.channel_manager.DashboardChannelManager"
EVENTSTREAM_STORAGE_CLASS = "dashboard.storage.DashboardRedisStorage"

# GRIP: Pushpin in front of /events/ holds the SSE connections; the workers only
# authorise new ones and publish each event once to Pushpin's publish endpoint.
# Off unless GRIP_URL names that endpoint (e.g. http://pushpin:5561?key=SECRET).
# The key is Pushpin's sig_key: only requests it signed count as proxied. Without
# one, django-grip trusts any `Grip-Sig` header, so anyone reaching a worker could
# pass as Pushpin; with DEBUG off that refuses to start.
GRIP_URL = envurl("GRIP_URL", None, {"http", "https"})
if GRIP_URL:
    if not urlsplit(GRIP_URL).hostname:
        raise ImproperlyConfigured(f"GRIP_URL must name Pushpin's host, got {GRIP_URL!r}")
    if not DEBUG and not parse_qs(urlsplit(GRIP_URL).query).get("key", [""])[0]:
        raise ImproperlyConfigured(
            "GRIP_URL has no signing key: add ?key=SECRET (Pushpin's sig_key) or set DEBUG=1"
        )
    MIDDLEWARE.insert(0, "django_grip.GripMiddleware")

# The web workers (`python -m deploy.worker`, which make run, make stack, compose
# and the image all use): which ASGI server, whose proxy headers to believe, and
# whether to log a line per request. `daphne` stays in INSTALLED_APPS for runserver.
ASGI_SERVER = envchoice("ASGI_SERVER", "uvicorn", {"uvicorn", "daphne"})
# X-Forwarded-For/-Proto are believed only from these peers (nginx, Pushpin); "*" trusts all.
FORWARDED_ALLOW_IPS = envlist("FORWARDED_ALLOW_IPS", ["127.0.0.1", "::1"])
ACCESS_LOG = envbool("ACCESS_LOG", False)
# How long a stopping worker waits for its streams and sockets to move elsewhere.
GRACEFUL_SHUTDOWN_SECONDS = envint("GRACEFUL_SHUTDOWN_SECONDS", 10, minimum=1)

# Open SSE streams, and open sockets, one user may hold on one worker: a tab takes one
# of each. Past it a stream is answered 429 and a socket closed with 4008.
MAX_CONNECTIONS_PER_USER = envint("MAX_CONNECTIONS_PER_USER", 30, minimum=1)
# Open streams one share link may have, over every worker; past it a viewer gets 429.
SHARE_MAX_VIEWERS = envint("SHARE_MAX_VIEWERS", 1000, minimum=1)
# Behind Pushpin no worker sees a viewer leave: there a link's viewers are its connects
# within this many seconds (dashboard.connections.aclaim_edge_share).
SHARE_EDGE_LEASE_SECONDS = envint("SHARE_EDGE_LEASE_SECONDS", 600, minimum=1)

# The collector's values are the series `name{host="<COLLECTOR_HOST>"}`: by default
# this machine's name; set it where that name says nothing (a container's id).
COLLECTOR_HOST = envstr("COLLECTOR_HOST", socket.gethostname())
if len(COLLECTOR_HOST) > 256 or not COLLECTOR_HOST.isprintable():
    raise ImproperlyConfigured(
        f"COLLECTOR_HOST must be at most 256 printable characters, got {len(COLLECTOR_HOST)}:"
        f" {COLLECTOR_HOST[:40]!r}"
    )

# Alert rules as code: the JSON/YAML files here are provisioned when the collector
# starts and by `manage.py provision_alert_rules` (alerts/provisioning.py). Empty: none.
ALERT_RULES_DIR = envstr("ALERT_RULES_DIR")
if ALERT_RULES_DIR and not Path(ALERT_RULES_DIR).is_dir():
    raise ImproperlyConfigured(f"ALERT_RULES_DIR must be a directory, got {ALERT_RULES_DIR!r}")

# How long metric history (and so `Last-Event-ID` replay) is kept.
METRICS_RETENTION_HOURS = envint("METRICS_RETENTION_HOURS", 24, minimum=1)

# Long-range history: per-metric rollups in the database, one tier per step, each
# pruned after its retention (dashboard/rollups.py). The collector process writes them.
HISTORY_TIERS = envtiers("HISTORY_TIERS", "10s:7d,1m:31d,15m:1y")

# Cardinality: live series (a name plus labels, pushed within METRICS_RETENTION_HOURS)
# in all and per metric name. A point that would start a series past either is refused
# (dashboard/seriesindex.py), so a runaway label cannot grow Redis and the database.
MAX_SERIES = envint("MAX_SERIES", 10_000, minimum=1)
MAX_SERIES_PER_METRIC = envint("MAX_SERIES_PER_METRIC", 2_000, minimum=1)

# Scrape targets (scrape/): how many the collector scrapes at once, how long one scrape
# may take at most (a target's interval, when shorter, bounds it too), and the largest
# exposition read from one.
SCRAPE_CONCURRENCY = envint("SCRAPE_CONCURRENCY", 4, minimum=1)
SCRAPE_TIMEOUT_SECONDS = envint("SCRAPE_TIMEOUT_SECONDS", 10, minimum=1)
SCRAPE_MAX_BODY_BYTES = envint("SCRAPE_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1)

# The HTTP API's limits (docs/api.md, "From other services: the HTTP API"). A body is
# measured after decompression; the per-token rates are shared by every worker.
API_MAX_BODY_BYTES = envint("API_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1)
API_MAX_POINTS = envint("API_MAX_POINTS", 50_000, minimum=1)
API_TOKEN_REQUESTS_PER_SECOND = envint("API_TOKEN_REQUESTS_PER_SECOND", 200, minimum=1)
API_TOKEN_POINTS_PER_SECOND = envint("API_TOKEN_POINTS_PER_SECOND", 100_000, minimum=1)
# E-mail for notification delivery channels (Django's own names). Without
# EMAIL_HOST mail goes to the console log, so `make run` shows what would be sent.
EMAIL_HOST = envstr("EMAIL_HOST")
EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
if EMAIL_PORT > 65535:
    raise ImproperlyConfigured(f"EMAIL_PORT must be a TCP port (1-65535), got {EMAIL_PORT}")
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", strip=False)
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", strip=False)
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "livedash@localhost")
if "@" not in DEFAULT_FROM_EMAIL or any(ch.isspace() for ch in DEFAULT_FROM_EMAIL):
    raise ImproperlyConfigured(f"DEFAULT_FROM_EMAIL must be an e-mail address, got {DEFAULT_FROM_EMAIL!r}")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Seconds one delivery attempt (an SMTP conversation, a webhook POST) may take.
DELIVERY_TIMEOUT = envint("DELIVERY_TIMEOUT", 10, minimum=1)
EMAIL_TIMEOUT = DELIVERY_TIMEOUT

# How long audit log entries are kept (the collector prunes older ones).
AUDIT_RETENTION_DAYS = envint("AUDIT_RETENTION_DAYS", 365, minimum=1)

# Dashboards as code: the JSON and YAML files in this folder are provisioned by the
# collector at start and whenever one changes (it looks every DASHBOARDS_CHECK_SECONDS),
# and by `manage.py provision_dashboards`. The default is the two livedash ships.
DASHBOARDS_DIR = Path(envstr("DASHBOARDS_DIR", str(BASE_DIR / "deploy" / "dashboards"))).expanduser()
DASHBOARDS_CHECK_SECONDS = envint("DASHBOARDS_CHECK_SECONDS", 10, minimum=1)
