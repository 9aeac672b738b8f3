"""`syncd backfill`: the whole history or a window, ignoring the stop rule, resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from syncd.sandbox import FaultRule, Sandbox
from syncd.state import StateStore
from tests.helpers import TOKEN_ENV, run_syncd, sandbox_config


def _licensed(license: dict) -> datetime:
    """When the license was bought, in UTC (the history mixes offsets; windows are UTC days)."""
    return datetime.fromisoformat(license["download_time"].replace("Z", "+00:00")).astimezone(UTC)


def test_backfill_walks_past_the_frontier_and_finds_what_sync_never_saw(tmp_path: Path) -> None:
    with Sandbox(seed=81, licenses=30) as sandbox:
        config = sandbox_config(tmp_path, sandbox.url)
        assert run_syncd("sync", config=config).code == 0
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        # Lose the record of a few old licenses: an incremental sync stops at the frontier and never looks back.
        with store.write() as session:
            from sqlmodel import delete

            from syncd.models import Item
            old = [lic["id"] for lic in sandbox.licenses("image")[-5:]]
            session.exec(delete(Item).where(Item.license_id.in_(old)))  # type: ignore[attr-defined]
        assert run_syncd("sync", config=config).code == 0
        assert not store.known_license_ids("shutterstock", old)
        result = run_syncd("backfill", config=config)
        assert result.code == 0, result.stderr[-2000:]
        assert store.known_license_ids("shutterstock", old) == set(old)
        assert store.status_counts()["queued"] == 0


def test_backfill_with_a_window_takes_only_that_window(tmp_path: Path) -> None:
    with Sandbox(seed=82, licenses=40) as sandbox:
        history = sandbox.licenses("image")
        since, until = _licensed(history[30]), _licensed(history[10])
        config = sandbox_config(tmp_path, sandbox.url)
        result = run_syncd("backfill", "--since", since.date().isoformat(), "--until", until.date().isoformat(),
                           config=config)
        assert result.code == 0, result.stderr[-2000:]
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        known = store.known_license_ids("shutterstock", [lic["id"] for lic in history])
        inside = {lic["id"] for lic in history if since.date() <= _licensed(lic).date() <= until.date()}
        assert known == inside
        assert store.frontier("shutterstock", "image") is None  # a window says nothing about the rest


def test_an_interrupted_backfill_resumes_where_it_stopped(tmp_path: Path) -> None:
    with Sandbox(seed=83, licenses=650) as sandbox:
        config = sandbox_config(tmp_path, sandbox.url, sync={"concurrency": 1})
        process = subprocess.Popen([sys.executable, "-m", "syncd.cli", "--config", str(config), "backfill"],
                                   env={**os.environ, TOKEN_ENV: "sandbox-token"},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def kill_after_page_two(call) -> None:  # type: ignore[no-untyped-def]
            if call.path == "/v2/images/licenses" and call.query.get("page") == ["2"]:
                threading.Timer(0.7, lambda: process.poll() is None and process.send_signal(signal.SIGKILL)).start()

        slow = sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", kind="slow", delay=1.5, after=2, times=1))
        sandbox.on_request(kill_after_page_two)
        process.wait(timeout=60)
        sandbox.on_request(lambda call: None)
        # The killed process's page 3 is logged only when its delay ends: let it land before
        # counting, or it would look like the resumed walk's first request.
        deadline = time.monotonic() + 10
        while slow.fired and not any(c.query.get("page") == ["3"] for c in sandbox.calls) and time.monotonic() < deadline:
            time.sleep(0.05)
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        assert sum(store.status_counts().values()) == 400
        before = len(sandbox.calls)
        result = run_syncd("backfill", config=config)
        assert result.code == 0, result.stderr[-2000:]
        assert sum(store.status_counts().values()) == 650
        resumed = [c for c in sandbox.calls[before:] if c.path == "/v2/images/licenses"]
        assert resumed[0].query.get("end_date"), "the resumed walk starts where the first stopped"
