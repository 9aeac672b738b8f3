"""Re-licensing spends money: exactly within budget, never twice, reconciled after a lost answer."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from syncd.sandbox import FaultRule, Sandbox
from syncd.state import StateStore
from tests.helpers import TOKEN_ENV, library_files, run_syncd, sandbox_config


def _subscription(sandbox: Sandbox) -> str:
    body = httpx.get(f"{sandbox.url}/v2/user/subscriptions",
                     headers={"Authorization": "Bearer sandbox-token", "User-Agent": "test"}).json()
    return body["data"][0]["id"]


def _licensing_posts(sandbox: Sandbox) -> list:
    return [c for c in sandbox.calls if c.method == "POST" and c.path.endswith("/licenses")]


def _config(tmp_path: Path, sandbox: Sandbox, budget: int, sync: dict | None = None, **source: object) -> Path:
    return sandbox_config(tmp_path, sandbox.url, source={"relicense": True, "max_relicenses_per_run": budget,
                                                         "subscription_id": _subscription(sandbox), **source},
                          sync=sync or {})


def _dump(database: Path) -> list:
    with sqlite3.connect(database) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return [(t, sorted(map(repr, connection.execute(f"SELECT * FROM {t}")))) for t in tables]


def test_relicensing_stays_within_the_budget_and_never_buys_twice(tmp_path: Path) -> None:
    with Sandbox(seed=31, licenses=0) as sandbox:
        sandbox.add_licenses(4, media_type="image", is_downloadable=True)
        locked = sandbox.add_licenses(5, media_type="image", is_downloadable=False)
        config = _config(tmp_path, sandbox, budget=2)
        first = run_syncd("sync", config=config)
        assert first.code == 0, first.stderr
        assert sandbox.licensing_calls == 2
        status = json.loads(run_syncd("status", "--json", config=config).stdout)
        assert sum("budget" in (p["reason"] or "") for p in status["problems"]) == 3
        assert run_syncd("sync", config=config).code == 0
        assert run_syncd("sync", config=config).code == 0
        assert sandbox.licensing_calls == 5
        posts = _licensing_posts(sandbox)
        assert len(posts) == 5
        assert all(c.query.get("subscription_id") == [_subscription(sandbox)] for c in posts)
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        assert store.status_counts() == {"synced": 4 + 5 + 5, "queued": 0, "failed": 0, "skipped": 0}
        assert run_syncd("sync", config=config).code == 0
        assert sandbox.licensing_calls == 5  # the licenses syncd bought are not synced as new
        _, sidecars = library_files(tmp_path / "library")
        documents = {json.loads(p.read_text())["media_id"]: json.loads(p.read_text()) for p in sidecars}
        for original in locked:
            document = documents[str(original["image"]["id"])]
            assert len(document["licenses"]) == 2  # the original and the one that replaced it
        assert len(documents) == 9


def test_dry_run_lists_the_cost_and_changes_nothing(tmp_path: Path) -> None:
    with Sandbox(seed=32, licenses=0) as sandbox:
        sandbox.add_licenses(2, media_type="image", is_downloadable=True)
        config = _config(tmp_path, sandbox, budget=2)
        assert run_syncd("sync", config=config).code == 0  # a state exists to compare
        sandbox.add_licenses(3, media_type="image", is_downloadable=False)
        before = _dump(tmp_path / "state.db")
        calls = len(sandbox.calls)
        result = run_syncd("sync", "--dry-run", config=config)
        assert result.code == 0, result.stderr
        assert result.stdout.count("would re-license") == 2
        assert "2 license(s) on subscription" in result.stdout
        assert "budget" in result.stdout
        assert _dump(tmp_path / "state.db") == before
        assert not [c for c in sandbox.calls[calls:] if c.method == "POST"]


def test_a_lost_answer_is_reconciled_from_the_history_not_bought_again(tmp_path: Path) -> None:
    with Sandbox(seed=33, licenses=0) as sandbox:
        locked = sandbox.add_licenses(1, media_type="image", is_downloadable=False)[0]
        sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", method="POST", kind="lost_response", times=1))
        config = _config(tmp_path, sandbox, budget=5)
        first = run_syncd("sync", config=config)
        assert first.code == 1  # not synced yet: waiting for the outcome
        assert sandbox.licensing_calls == 1
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        assert [i.status for i in store.intents()] == ["unknown"]
        second = run_syncd("sync", config=config)
        assert second.code == 0, second.stderr
        assert sandbox.licensing_calls == 1  # reconciled, not bought again
        assert [i.status for i in store.intents()] == ["done"]
        items = store.licenses_of_media("shutterstock", "image", str(locked["image"]["id"]))
        assert sorted(i.status for i in items) == ["synced", "synced"]
        assert [i.relicensed_from for i in items if i.relicensed_from] == [locked["id"]]


def test_sigkill_during_licensing_then_sync_buys_nothing_twice(tmp_path: Path) -> None:
    with Sandbox(seed=34, licenses=0) as sandbox:
        sandbox.add_licenses(3, media_type="image", is_downloadable=False)
        config = _config(tmp_path, sandbox, budget=10, sync={"concurrency": 1})
        process = subprocess.Popen([sys.executable, "-m", "syncd.cli", "--config", str(config), "sync"],
                                   env={**os.environ, TOKEN_ENV: "sandbox-token"},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def kill_on_second_purchase(call) -> None:  # type: ignore[no-untyped-def]
            if call.method == "POST" and call.path == "/v2/images/licenses" and sandbox.licensing_calls >= 1:
                if len(_licensing_posts(sandbox)) == 2:
                    os.kill(process.pid, signal.SIGKILL)  # the license exists; the answer never arrives

        sandbox.on_request(kill_on_second_purchase)
        process.wait(timeout=60)
        sandbox.on_request(lambda call: None)
        assert process.returncode == -signal.SIGKILL
        bought_before = sandbox.licensing_calls
        assert run_syncd("sync", config=config).code == 0
        assert sandbox.licensing_calls == 3  # one per media, whatever the kill did
        assert bought_before == 2
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        assert store.status_counts()["synced"] == 6


def test_an_unknown_subscription_buys_nothing_and_says_why(tmp_path: Path) -> None:
    with Sandbox(seed=35, licenses=0) as sandbox:
        sandbox.add_licenses(2, media_type="image", is_downloadable=False)
        config = sandbox_config(tmp_path, sandbox.url, source={"relicense": True, "max_relicenses_per_run": 5,
                                                              "subscription_id": "s000"})
        assert run_syncd("sync", config=config).code == 0
        assert sandbox.licensing_calls == 0
        status = json.loads(run_syncd("status", "--json", config=config).stdout)
        assert all("s000" in p["reason"] for p in status["problems"])


def test_editorial_is_relicensed_through_the_editorial_endpoint_with_the_country(tmp_path: Path) -> None:
    with Sandbox(seed=36, licenses=3, media_types=("editorial_image",)) as sandbox:
        config = _config(tmp_path, sandbox, budget=10, media=["editorial"], editorial_country="DEU")
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr
        posts = [c for c in _licensing_posts(sandbox) if c.path == "/v2/editorial/images/licenses"]
        assert len(posts) == 3 == sandbox.licensing_calls
        _, sidecars = library_files(tmp_path / "library")
        documents = [json.loads(p.read_text()) for p in sidecars]
        assert documents and all(d["editorial"] and d["media_type"] == "editorial_image" for d in documents)
