"""Dashboards as code: every `*.json`, `*.yaml` and `*.yml` file in DASHBOARDS_DIR is a
dashboard that follows its file.

`sync()` brings the database in line with the folder: a new or changed file is
(re)loaded as a new version; a file that is gone takes its dashboard with it
(the audit log keeps the dashboard's last JSON); a file that does not parse or
validate is reported and changes nothing, so a half-saved edit never loses the
dashboard. Files are read only when their modification time or size moved, so the
collector can call it every few seconds for the price of a directory listing and
one query. A folder that does not exist removes nothing: an unmounted volume must
not empty the dashboards.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings
from django.db import IntegrityError

from boards import spec, store
from boards.models import Dashboard

logger = logging.getLogger(__name__)

SUFFIXES = (".json", ".yaml", ".yml")
# A dashboard is a few kilobytes; a file far larger is a mistake, not read into memory.
MAX_FILE_BYTES = 1 << 20


class FileError(ValueError):
    pass


class PlainYamlLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a dashboard needs none, and nested aliases can
    stand for more data than any memory holds (the "billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in dashboard files", mark
            )
        return super().compose_node(parent, index)


@dataclass
class Outcome:
    loaded: list = field(default_factory=list)  # (file, uid)
    unchanged: list = field(default_factory=list)
    removed: list = field(default_factory=list)  # (file, uid)
    failed: list = field(default_factory=list)  # (file, message)
    missing_directory: bool = False


def signature(stat):
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def read_document(path):
    """The document in a JSON or YAML file; `FileError` saying why not."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise FileError(f"larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(f"cannot be read: {exc}") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=PlainYamlLoader)  # noqa: S506 (a SafeLoader)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise FileError(f"is not valid {kind}: {' '.join(str(exc).split())}") from None


def _files(directory):
    found = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in SUFFIXES and path.is_file() and not path.name.startswith("."):
            found[path.name] = path
    return found


def sync(directory=None, force=False):
    """Provision DASHBOARDS_DIR (or `directory`); returns an `Outcome`. `force` rereads
    every file even when its signature did not move."""
    directory = Path(directory or settings.DASHBOARDS_DIR)
    outcome = Outcome()
    if not directory.is_dir():
        outcome.missing_directory = True
        return outcome
    files = _files(directory)
    followed = {board.provisioned_from: board for board in Dashboard.objects.exclude(provisioned_from="")}
    served = {}  # file -> uid it provides now
    for name, path in files.items():
        try:
            stamp = signature(path.stat())
        except OSError as exc:
            outcome.failed.append((name, f"cannot be read: {exc}"))
            continue
        board = followed.get(name)
        if board is not None and board.provisioned_signature == stamp and not force:
            served[name] = board.uid
            outcome.unchanged.append((name, board.uid))
            continue
        try:
            document = read_document(path)
            uid = spec.validate(document)["uid"]
            owner = Dashboard.objects.filter(uid=uid).exclude(provisioned_from="").first()
            if owner is not None and owner.provisioned_from != name and owner.provisioned_from in files:
                raise FileError(f"uid {uid} is already provisioned from {owner.provisioned_from}")
            store.provision(document, name, stamp)
        except IntegrityError:
            # Another process (the collector, the command) created this uid at the same moment.
            exc = FileError("was provisioned by another process at the same time; it is read again next time")
            outcome.failed.append((name, str(exc)))
            continue
        except (FileError, spec.InvalidDashboard) as exc:
            outcome.failed.append((name, str(exc)))
            if board is not None:
                served[name] = board.uid  # kept as it was until the file is fixed
            continue
        served[name] = uid
        outcome.loaded.append((name, uid))
    for name, board in followed.items():
        if served.get(name) != board.uid and not _taken_over(board, served):
            store.delete(board.uid, author=store.Author(name="provisioning"), provisioning=True)
            outcome.removed.append((name, board.uid))
    for name, message in outcome.failed:
        logger.warning("dashboard file %s not provisioned: %s", name, message)
    return outcome


def _taken_over(board, served):
    """Whether another file now provides this uid (a renamed file): then it was reloaded, not removed."""
    return any(uid == board.uid and name != board.provisioned_from for name, uid in served.items())


_said_missing = set()


def check_for_changes():
    """The collector's chore: provision what moved in DASHBOARDS_DIR since the last look."""
    outcome = sync()
    if outcome.missing_directory and str(settings.DASHBOARDS_DIR) not in _said_missing:
        _said_missing.add(str(settings.DASHBOARDS_DIR))  # once per process, not every look
        logger.warning(
            "DASHBOARDS_DIR %s is not a folder: no dashboards provisioned", settings.DASHBOARDS_DIR
        )
    for name, uid in outcome.loaded:
        logger.info("provisioned dashboard %s from %s", uid, name)
    for name, uid in outcome.removed:
        logger.info("removed dashboard %s: its file %s is gone", uid, name)
    return outcome
