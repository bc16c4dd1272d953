"""Dashboards across real processes: the commands, the collector's provisioning, and a
save reaching an open SSE stream through a real web worker."""

import asyncio
import json

import httpx
import pytest

from api.models import ApiToken
from audit.models import AuditEntry
from boards.models import Dashboard
from boards.tests.documents import board
from tests.realclients import EventStream

pytestmark = pytest.mark.slow


def test_export_then_import_gives_the_same_dashboard(manage, tmp_path):
    from boards import store

    store.save(board(visibility={"groups": ["ops"]}), author=store.Author(name="alice"))
    exported = manage("export_dashboard", "checkout")
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert document == {**board(visibility={"groups": ["ops"]}), "version": 1}
    path = tmp_path / "checkout.json"
    path.write_text(exported.stdout)

    # Under another uid: the same dashboard.
    copied = manage("import_dashboard", str(path), "--uid", "copy")
    assert copied.returncode == 0, copied.stderr
    assert "imported copy as version 1" in copied.stdout
    again = json.loads(manage("export_dashboard", "copy").stdout)
    assert again == {**document, "uid": "copy"}

    # Over the same uid: replaced by a new version, with an audit entry.
    replaced = manage("import_dashboard", str(path))
    assert replaced.returncode == 0, replaced.stderr
    stored = Dashboard.objects.get(uid="checkout")
    assert stored.version == 2
    assert stored.export() == {**document, "version": 2}
    entry = AuditEntry.objects.filter(action="dashboard.import").latest("id")
    assert (entry.actor, entry.target) == ("manage.py import_dashboard", "dashboard checkout")


def test_the_commands_refuse_bad_input_in_one_line(manage, tmp_path):
    missing = manage("export_dashboard", "nothing")
    assert missing.returncode != 0 and "no dashboard 'nothing'" in missing.stderr
    broken = board()
    broken["panels"][0]["type"] = "pie"
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    refused = manage("import_dashboard", str(tmp_path / "bad.json"))
    assert refused.returncode != 0
    assert "panels[0].type: must be one of" in refused.stderr
    assert not Dashboard.objects.exists()


def test_provision_dashboards_and_the_collector_at_start_follow_the_folder(manage, tmp_path):
    (tmp_path / "checkout.yaml").write_text(json.dumps(board()))  # JSON is YAML too
    result = manage("provision_dashboards", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "provisioned checkout from checkout.yaml" in result.stdout
    (tmp_path / "checkout.yaml").unlink()
    (tmp_path / "db.json").write_text(json.dumps(board(uid="db")))
    # The collector provisions DASHBOARDS_DIR as it starts.
    collector = manage("collect_metrics", "--ticks", "1", env={"DASHBOARDS_DIR": str(tmp_path)})
    assert collector.returncode == 0, collector.stderr
    assert list(Dashboard.objects.values_list("uid", "provisioned_from")) == [("db", "db.json")]
    # The shipped folder is the default.
    shipped = manage("provision_dashboards")
    assert shipped.returncode == 0, shipped.stderr
    assert set(Dashboard.objects.values_list("uid", flat=True)) >= {"host-overview", "livedash"}


def test_create_token_dashboards_gives_the_scope(manage):
    result = manage("create_token", "ci", "--dashboards")
    assert result.returncode == 0, result.stderr
    token = ApiToken.objects.get(name="ci")
    assert token.scopes == ["dashboards"]


async def test_a_save_reaches_open_streams_within_a_second_and_only_those_who_may_see_it(
    web_workers, alice, alice_cookies, bob_cookies, transactional_db
):
    [base] = web_workers(1)
    row, raw = await asyncio.to_thread(ApiToken.create, "alices", dashboards=True)
    await ApiToken.objects.filter(pk=row.pk).aupdate(created_by=alice)
    headers = {"Authorization": f"Bearer {raw}"}
    async with (
        EventStream(base, ["metrics", f"user-{alice.pk}"], alice_cookies) as alices,
        EventStream(base, ["metrics"], bob_cookies) as bobs,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        # Private to alice (the token's creator): on her own channel only.
        answer = await client.put("/api/v1/dashboards/mine", json=board(uid="mine"), headers=headers)
        assert answer.status_code == 200, answer.text
        mine = await alices.wait_for(lambda e: e["event"] == "dashboard-changed", timeout=1.0)
        # Visible to everyone: on `metrics`, which bob reads too.
        shared = board(uid="shared", visibility="everyone")
        answer = await client.put("/api/v1/dashboards/shared", json=shared, headers=headers)
        assert answer.status_code == 200, answer.text
        seen = await bobs.wait_for(lambda e: e["event"] == "dashboard-changed", timeout=1.0)
        await alices.wait_for(lambda e: e["data"] == seen["data"], timeout=1.0)
    assert mine["data"] == {"uid": "mine", "version": 1, "by": "alice"}
    assert mine["id"]
    assert seen["data"] == {"uid": "shared", "version": 1, "by": "alice"}
    assert [e["data"]["uid"] for e in bobs.of_type("dashboard-changed")] == ["shared"]
