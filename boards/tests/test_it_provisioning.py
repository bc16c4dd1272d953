"""Provisioning DASHBOARDS_DIR: JSON and YAML files, changes, removals, bad files."""

import json
import os

import pytest
import yaml

from audit.models import AuditEntry
from boards import provisioning, store
from boards.models import Dashboard
from boards.tests.documents import board


def write(path, document, as_yaml=False, bump=0):
    path.write_text(yaml.safe_dump(document) if as_yaml else json.dumps(document))
    if bump:
        # A later modification time, whatever the file system's clock resolution.
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


@pytest.fixture
def folder(tmp_path, db):
    return tmp_path


def test_json_and_yaml_files_become_dashboards_that_follow_them(folder):
    write(folder / "checkout.json", board())
    write(folder / "db.yaml", board(uid="db", title="Databases"), as_yaml=True)
    (folder / "notes.txt").write_text("not a dashboard")
    outcome = provisioning.sync(folder)
    assert sorted(outcome.loaded) == [("checkout.json", "checkout"), ("db.yaml", "db")]
    db = Dashboard.objects.get(uid="db")
    assert (db.title, db.version, db.provisioned_from, db.owner) == ("Databases", 1, "db.yaml", None)
    assert db.export() == {**board(uid="db", title="Databases"), "version": 1}

    again = provisioning.sync(folder)
    assert (again.loaded, len(again.unchanged)) == ([], 2)

    write(folder / "db.yaml", board(uid="db", title="Databases, renamed"), as_yaml=True, bump=5)
    changed = provisioning.sync(folder)
    assert changed.loaded == [("db.yaml", "db")]
    db.refresh_from_db()
    assert (db.title, db.version) == ("Databases, renamed", 2)
    assert [v.version for v in db.versions.all()] == [2, 1]

    # Touched but the same: read again, no new version.
    write(folder / "db.yaml", board(uid="db", title="Databases, renamed"), as_yaml=True, bump=10)
    provisioning.sync(folder)
    db.refresh_from_db()
    assert db.version == 2


def test_a_removed_file_removes_its_dashboard(folder):
    write(folder / "checkout.json", board())
    write(folder / "keep.json", board(uid="keep"))
    provisioning.sync(folder)
    (folder / "checkout.json").unlink()
    outcome = provisioning.sync(folder)
    assert outcome.removed == [("checkout.json", "checkout")]
    assert list(Dashboard.objects.values_list("uid", flat=True)) == ["keep"]
    entry = AuditEntry.objects.get(action="dashboard.delete")
    assert (entry.actor, entry.target, entry.before["uid"]) == (
        "provisioning",
        "dashboard checkout",
        "checkout",
    )


def test_a_bad_file_is_reported_and_loses_nothing(folder):
    write(folder / "checkout.json", board())
    provisioning.sync(folder)
    broken = board()
    broken["panels"][1]["grid"]["x"] = 11
    write(folder / "checkout.json", broken, bump=5)
    (folder / "half.yaml").write_text("uid: [unclosed\n")
    outcome = provisioning.sync(folder)
    failures = dict(outcome.failed)
    assert failures["checkout.json"].startswith("panels[1].grid.w: x + w must be at most 12")
    assert failures["half.yaml"].startswith("is not valid YAML")
    kept = Dashboard.objects.get(uid="checkout")
    assert (kept.version, kept.export()["panels"][1]["grid"]["x"]) == (1, 6)
    assert outcome.removed == []


def test_a_missing_folder_removes_nothing(folder):
    write(folder / "checkout.json", board())
    provisioning.sync(folder)
    outcome = provisioning.sync(folder / "unmounted")
    assert outcome.missing_directory
    assert Dashboard.objects.filter(uid="checkout").exists()


def test_a_file_takes_over_a_dashboard_people_made_and_one_uid_has_one_file(folder, alice):
    store.save(board(), author=store.Author(name="alice", owner=alice))
    write(folder / "a.json", board(title="From a file"))
    write(folder / "b.json", board(title="A second file"))
    outcome = provisioning.sync(folder)
    assert outcome.loaded == [("a.json", "checkout")]
    assert dict(outcome.failed)["b.json"] == "uid checkout is already provisioned from a.json"
    taken = Dashboard.objects.get(uid="checkout")
    assert (taken.title, taken.version, taken.provisioned_from) == ("From a file", 2, "a.json")
    # Renaming the file moves the dashboard with it, without removing it.
    (folder / "b.json").unlink()
    (folder / "a.json").rename(folder / "c.json")
    outcome = provisioning.sync(folder)
    assert outcome.removed == []
    assert Dashboard.objects.get(uid="checkout").provisioned_from == "c.json"
    # A file whose uid changes takes its old dashboard away.
    write(folder / "c.json", board(uid="renamed"), bump=5)
    provisioning.sync(folder)
    assert list(Dashboard.objects.values_list("uid", flat=True)) == ["renamed"]


def test_yaml_aliases_are_refused(folder):
    laughs = "uid: a\ntitle: &t [x, x, x]\ndescription: [*t, *t]\npanels: []\n"
    (folder / "laughs.yaml").write_text(laughs)
    outcome = provisioning.sync(folder)
    assert "aliases (*name) are not allowed" in dict(outcome.failed)["laughs.yaml"]
    assert not Dashboard.objects.exists()
