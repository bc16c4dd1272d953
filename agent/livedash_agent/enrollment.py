"""Enrollment: trading an enrollment token for this host's own token, once.

The token livedash answers is stored in the agent's state folder (the buffer's), mode
0600, beside the host it was issued for; every later start reuses it, so an enrollment
token is needed only the first time. livedash refuses to enroll a host again while its
token is active: a lost token file means revoking the host's token (the hosts page, or
`manage.py revoke_token`) before enrolling again.
"""

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from livedash_agent.sender import TIMEOUT_SECONDS, Backoff

logger = logging.getLogger("livedash_agent")

ENROLL_PATH = "/api/v1/agents/enroll"
TOKEN_FILE = "token.json"  # noqa: S105 (a file name)


class EnrollmentRefused(Exception):
    """livedash answered no (a 4xx other than 429): asking again would not change it."""


def token_path(directory):
    return Path(directory) / TOKEN_FILE


def stored_token(directory, host):
    """The token stored for `host`, or None when none is stored. A token stored for
    another host is an error: it would push nothing but refusals."""
    path = token_path(directory)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise EnrollmentRefused(f"cannot read the stored token {path}: {error}") from None
    if not isinstance(stored, dict) or not isinstance(stored.get("token"), str):
        raise EnrollmentRefused(f"{path} holds no token; remove it to enroll again")
    if stored.get("host") != host:
        raise EnrollmentRefused(
            f"{path} holds the token of host {stored.get('host')!r}, not {host!r}; remove it to enroll again"
        )
    return stored["token"]


def store_token(directory, host, token):
    """Written to a temporary file created 0600 and renamed into place, so the token is
    never readable by others nor ever half written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = token_path(directory)
    temporary = path.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"host": host, "token": token}, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return path


def enroll_url(base_url):
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + ENROLL_PATH, "", ""))


def request_token(base_url, enroll_token, host, user_agent, timeout=TIMEOUT_SECONDS):
    """One enrollment request: the new token; EnrollmentRefused on a refusal; OSError
    (URLError included) when livedash cannot be reached or is failing."""
    request = urllib.request.Request(  # noqa: S310 (write_url() checked the scheme: http(s) only)
        enroll_url(base_url),
        data=json.dumps({"host": host}).encode("utf-8"),
        method="POST",
        headers={
            "Authorization": f"Bearer {enroll_token}",
            "Content-Type": "application/json",
            "User-Agent": user_agent,
            "Connection": "close",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            return json.loads(response.read())["token"]
    except urllib.error.HTTPError as error:
        text = error.read(2048).decode("utf-8", "replace").strip()
        if 400 <= error.code < 500 and error.code != 429:
            raise EnrollmentRefused(
                f"livedash refused to enroll host {host!r}: HTTP {error.code}: {text}"
            ) from None
        raise OSError(f"HTTP {error.code}: {text}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise OSError(f"unreadable enrollment answer: {error}") from None


def token_for(base_url, enroll_token, host, directory, user_agent, wait, backoff=None):
    """The stored token, or a new one from livedash (retried with backoff while it is away),
    then stored. `wait(seconds)` sleeps and returns True to give up (a stop signal): then None."""
    token = stored_token(directory, host)
    if token is not None:
        logger.info("using the token stored in %s", token_path(directory))
        return token
    backoff = backoff or Backoff()
    while True:
        try:
            token = request_token(base_url, enroll_token, host, user_agent)
        except OSError as error:
            delay = backoff.next_delay()
            logger.warning("cannot enroll yet (%s); trying again in %.1f s", error, delay)
            if wait(delay):
                return None
            continue
        path = store_token(directory, host, token)
        logger.info("enrolled host %s; its token is stored in %s", host, path)
        return token
