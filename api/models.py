import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from fnmatch import fnmatchcase

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

# A token reads `ldt_<prefix>_<secret>`: the prefix (not secret) finds the row, the
# whole token's SHA-256 is what is stored. The secret has 256 bits of entropy, so a
# fast hash is enough (nothing to brute-force), and no plaintext is ever kept.
TOKEN_MARK = "ldt_"  # noqa: S105 (a marker, not a secret)
PREFIX_LENGTH = 8

PATTERNS_HELP = 'Shell-style patterns of the metric names it may push: ["app_*", "cpu"]; ["*"] for all.'

SCOPES = ("metrics", "notify", "scrape", "read", "dashboards", "enroll")

# Writing "last used" on every request would turn each read into a write; once a
# minute (or when the address changes) is as precise as the admin needs.
LAST_USED_PRECISION = timedelta(seconds=60)


def hash_token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def split_token(raw):
    """The lookup prefix of a well-formed token, else None."""
    if not isinstance(raw, str) or not raw.startswith(TOKEN_MARK):
        return None
    prefix, sep, secret = raw[len(TOKEN_MARK) :].partition("_")
    if len(prefix) != PREFIX_LENGTH or not sep or len(secret) < 32:
        return None
    return prefix


def validate_patterns(value):
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise ValidationError('Metric patterns must be a list of non-empty strings, e.g. ["app_*"].')


# Each worker keeps the tokens it found for this long, so a steady stream of
# requests does not cost a database round trip each; it is what bounds how long a
# revocation (or a change of scopes) takes to reach every worker: under a second.
CACHE_SECONDS = 0.5
_found = {}


def forget_found_tokens():
    """This process's remembered tokens are stale (the tests' databases start empty)."""
    _found.clear()


# A hash no token can have, compared against when the prefix finds nothing, so a
# miss costs the same comparison as a hit.
_NO_HASH = "0" * 64


class HostAlreadyEnrolled(Exception):
    def __init__(self, host):
        super().__init__(f"host {host!r} is already enrolled; revoke its token to enroll it again")
        self.host = host


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked=False)


class ApiToken(models.Model):
    """A credential for the HTTP API and /metrics. Only a hash of it is stored;
    the token itself is shown once, when it is created."""

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    metric_patterns = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_patterns],
        help_text=PATTERNS_HELP,
    )
    notify = models.BooleanField(default=False, help_text="May send notifications.")
    scrape = models.BooleanField(default=False, help_text="May read /metrics.")
    read = models.BooleanField(
        default=False, help_text="May read the series and label values (/api/v1/series)."
    )
    dashboards = models.BooleanField(
        default=False, help_text="May read, create, change and delete every dashboard (dashboards as code)."
    )
    # Who made it in the admin (a command makes tokens for no one): dashboards the token
    # creates belong to them.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    enroll = models.BooleanField(
        default=False,
        help_text="May enroll host agents (/api/v1/agents/enroll), each getting its own host token.",
    )
    # A host token (what enrollment hands an agent) may push only series whose `host`
    # label is exactly this; empty: no label restriction.
    host = models.CharField(
        max_length=256,
        blank=True,
        db_index=True,
        help_text="Only points labelled host=<this> are accepted; empty for any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_from = models.GenericIPAddressField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        ordering = ["name"]
        constraints = [
            # One live token per enrolled host: enrolling it again needs the old one revoked.
            models.UniqueConstraint(
                fields=["host"],
                condition=models.Q(revoked=False) & ~models.Q(host=""),
                name="one_active_token_per_host",
            )
        ]

    def __str__(self):
        return self.name

    @classmethod
    def create(
        cls,
        name,
        metric_patterns=(),
        notify=False,
        scrape=False,
        read=False,
        dashboards=False,
        enroll=False,
        host="",
    ):
        """A new token: returns (the saved ApiToken, the token text). The text is
        not stored anywhere; show it to the user once."""
        token = cls(
            name=name,
            metric_patterns=list(metric_patterns),
            notify=notify,
            scrape=scrape,
            read=read,
            dashboards=dashboards,
            enroll=enroll,
            host=host,
        )
        raw = token.set_new_secret()
        token.full_clean(exclude=["prefix", "token_hash"])
        for _attempt in range(5):
            try:
                with transaction.atomic():
                    token.save()
                return token, raw
            except IntegrityError:
                if cls.objects.filter(name=name).exists():
                    raise ValueError(f"a token named {name!r} already exists") from None
                raw = token.set_new_secret()  # prefix collision: draw again
        raise RuntimeError("could not draw a unique token prefix")

    def set_new_secret(self):
        prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        raw = f"{TOKEN_MARK}{prefix}_{secrets.token_urlsafe(32)}"
        self.prefix, self.token_hash = prefix, hash_token(raw)
        return raw

    @classmethod
    def lookup(cls, raw):
        """The active token that `raw` is, or None (unknown, malformed, revoked)."""
        prefix = split_token(raw)
        token = cls._cached(prefix)
        if prefix and token is None:
            token = cls._remember(prefix, cls.objects.filter(prefix=prefix).first())
        return cls._checked(token, raw)

    @classmethod
    async def alookup(cls, raw):
        prefix = split_token(raw)
        token = cls._cached(prefix)
        if prefix and token is None:
            token = cls._remember(prefix, await cls.objects.filter(prefix=prefix).afirst())
        return cls._checked(token, raw)

    @staticmethod
    def _cached(prefix):
        found = _found.get(prefix)
        if found is None or time.monotonic() - found[1] > CACHE_SECONDS:
            return None
        return found[0]

    @staticmethod
    def _remember(prefix, token):
        # Only rows are kept (a revoked one too, refused below): unknown prefixes are
        # not, so made-up tokens cannot grow the cache.
        if token is not None:
            _found[prefix] = (token, time.monotonic())
        return token

    @staticmethod
    def _checked(token, raw):
        expected = token.token_hash if token else _NO_HASH
        matches = hmac.compare_digest(expected, hash_token(raw if isinstance(raw, str) else ""))
        if token is None or not matches or token.revoked:
            return None
        return token

    def has_scope(self, scope):
        if scope == "metrics":
            return bool(self.metric_patterns)
        if scope in ("notify", "scrape", "read", "dashboards", "enroll"):
            return getattr(self, scope)
        raise ValueError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")

    def allows_metric(self, name):
        return any(fnmatchcase(name, pattern) for pattern in self.metric_patterns)

    def allows_labels(self, labels):
        """A host token's points must carry exactly its `host` label; others any labels."""
        return not self.host or (labels or {}).get("host") == self.host

    @property
    def scopes(self):
        return [scope for scope in SCOPES if self.has_scope(scope)]

    @classmethod
    def enroll_host(cls, host):
        """A new token for host `host`: it may push any metric, only labelled host=`host`.
        Returns (token, text); raises HostAlreadyEnrolled while another active token
        holds that host."""
        if cls.objects.active().filter(host=host).exists():
            raise HostAlreadyEnrolled(host)
        name = f"agent:{host[:80]}:{secrets.token_hex(4)}"
        try:
            return cls.create(name, metric_patterns=["*"], host=host)
        except RuntimeError:  # create's retries all met the constraint: a concurrent enrollment won
            if cls.objects.active().filter(host=host).exists():
                raise HostAlreadyEnrolled(host) from None
            raise

    def revoke(self):
        self.revoked, self.revoked_at = True, timezone.now()
        self.save(update_fields=["revoked", "revoked_at"])

    def _last_used_update(self, address):
        now = timezone.now()
        stale = self.last_used_at is None or now - self.last_used_at >= LAST_USED_PRECISION
        if not stale and address == self.last_used_from:
            return None
        self.last_used_at, self.last_used_from = now, address
        return {"last_used_at": now, "last_used_from": address}

    def mark_used(self, address):
        fields = self._last_used_update(address)
        if fields:
            ApiToken.objects.filter(pk=self.pk).update(**fields)

    async def amark_used(self, address):
        fields = self._last_used_update(address)
        if fields:
            await ApiToken.objects.filter(pk=self.pk).aupdate(**fields)
