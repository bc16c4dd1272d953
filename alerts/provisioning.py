"""Alert rules provisioned from files: every `*.json`, `*.yaml` or `*.yml` in
ALERT_RULES_DIR holds one rule (alerts/code.py's JSON, with its `name`), a list of
them, or `{"rules": [...]}`.

A provisioned rule follows its file: the API refuses to change it (409
`provisioned`), each provisioning run replaces it with what the file says, and a
rule whose file (or entry) is gone is deleted. A file that cannot be read or holds
a bad rule is reported and leaves its rules as they were; the others still apply.
"""

import json
import logging
from pathlib import Path

import yaml

from alerts import code
from alerts.models import AlertRule

logger = logging.getLogger(__name__)

SUFFIXES = (".json", ".yaml", ".yml")


class ProvisioningError(Exception):
    """Some files could not be provisioned; the message lists them, one a line."""


def _rules_in(path):
    text = path.read_text(encoding="utf-8")
    loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(loaded, dict) and set(loaded) == {"rules"}:
        loaded = loaded["rules"]
    rules = loaded if isinstance(loaded, list) else [loaded]
    for rule in rules:
        if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
            raise ValueError("each rule needs a name")
    return rules


def provision(directory):
    """Make the provisioned rules what the files in `directory` say; returns
    {"applied": [names], "deleted": [names]}; `ProvisioningError` lists the failures
    (after applying everything that could be)."""
    directory = Path(directory)
    applied, kept, failures = [], [], []
    for path in sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        source = path.name
        try:
            rules = _rules_in(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            failures.append(f"{source}: {exc}")
            continue
        for data in rules:
            try:
                code.put(data["name"], data, provisioned_from=source)
                applied.append(data["name"])
            except (ValueError, code.Conflict) as exc:
                failures.append(f"{source}: rule {data['name']!r}: {exc}")
            # Named in its file, so not deleted below, even when this version is refused.
            kept.append(data["name"])
    stale = AlertRule.objects.exclude(provisioned_from="").exclude(name__in=kept)
    # A file that could not be read keeps its rules (a typo must not delete alerts).
    unreadable = {failure.split(":", 1)[0] for failure in failures}
    stale = [rule for rule in stale if rule.provisioned_from not in unreadable]
    for rule in stale:
        rule.delete()
    deleted = [rule.name for rule in stale]
    if failures:
        raise ProvisioningError("\n".join(failures))
    return {"applied": applied, "deleted": deleted}
