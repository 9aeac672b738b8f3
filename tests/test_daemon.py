"""`syncd run` and signals: real processes, real signals, real HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from syncd.sandbox import FaultRule, Sandbox
from syncd.state import StateStore
from tests.helpers import TOKEN_ENV, run_syncd, sandbox_config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(config: Path, *args: str) -> subprocess.Popen:
    environment = {**os.environ, TOKEN_ENV: "sandbox-token"}
    return subprocess.Popen([sys.executable, "-m", "syncd.cli", "--log-format", "json", "--config", str(config), *args],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def test_run_makes_passes_on_schedule_never_overlapping_and_picks_up_new_licenses(sandbox: Sandbox, tmp_path: Path) -> None:
    port = _free_port()
    config = sandbox_config(tmp_path, sandbox.url, schedule={"interval": "2s"}, metrics={"listen": f"127.0.0.1:{port}"})
    daemon = _start(config, "run")
    try:
        store_url = f"sqlite:///{tmp_path / 'state.db'}"
        _wait_for(lambda: (tmp_path / "state.db").exists() and StateStore(store_url).recent_runs(1))
        new = sandbox.add_licenses(3, media_type="image", is_downloadable=True)
        store = StateStore(store_url)
        _wait_for(lambda: len([r for r in store.recent_runs(20) if r.finished_at]) >= 3, timeout=30)
        _wait_for(lambda: set(store.known_license_ids("shutterstock", [n["id"] for n in new])) == {n["id"] for n in new})
        _wait_for(lambda: store.status_counts()["queued"] == 0)
        runs = sorted((r for r in store.recent_runs(20) if r.finished_at), key=lambda r: r.started_at)
        for earlier, later in zip(runs, runs[1:]):
            assert later.started_at >= earlier.finished_at  # never two passes at once
        assert all(r.command == "run" for r in runs)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=40)
    assert code == 0


def test_metrics_parse_and_match_status(sandbox: Sandbox, tmp_path: Path) -> None:
    port = _free_port()
    config = sandbox_config(tmp_path, sandbox.url, schedule={"interval": "1h"}, metrics={"listen": f"127.0.0.1:{port}"})
    daemon = _start(config, "run")
    try:
        def metrics_after_a_pass() -> dict | None:
            response = _get(f"http://127.0.0.1:{port}/metrics")
            if response is None or "\nsyncd_passes_total{" not in response.text:
                return None
            return {family.name: family for family in text_string_to_metric_families(response.text)}

        families = _wait_for(metrics_after_a_pass)
        health = _get(f"http://127.0.0.1:{port}/healthz")
        assert health is not None and health.status_code == 200
        status = json.loads(run_syncd("status", "--json", config=config).stdout)
        state = {s.labels["state"]: s.value for s in families["syncd_state_items"].samples}
        assert state == {k: float(v) for k, v in status["counts"].items()}
        synced = sum(s.value for s in families["syncd_items"].samples
                     if s.name == "syncd_items_total" and s.labels["outcome"] == "synced")
        assert synced == status["counts"]["synced"]
        calls = {(s.labels["endpoint"], s.labels["status"]): s.value for s in families["syncd_api_calls"].samples
                 if s.name == "syncd_api_calls_total"}
        assert calls[("/v2/images/licenses", "200")] == sandbox.count("GET", "/v2/images/licenses")
        assert "syncd_pass_duration_seconds" in families and "syncd_last_success_timestamp_seconds" in families
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=40) == 0


def test_healthz_turns_503_when_the_upstream_is_unreachable(tmp_path: Path) -> None:
    port = _free_port()
    config = sandbox_config(tmp_path, "http://127.0.0.1:9", schedule={"interval": "1h"},
                            metrics={"listen": f"127.0.0.1:{port}"})
    daemon = _start(config, "run")
    try:
        def unhealthy() -> httpx.Response | None:
            response = _get(f"http://127.0.0.1:{port}/healthz")
            return response if response is not None and response.status_code == 503 else None

        response = _wait_for(unhealthy, timeout=60)
        assert "127.0.0.1" in response.text
        assert daemon.poll() is None  # a failed pass does not end the daemon
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=40) == 0


def _assert_counted_means_stored(tmp_path: Path) -> int:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    synced = 0
    with store.read() as session:
        from sqlmodel import select

        from syncd.models import StoredAsset
        for row in session.exec(select(StoredAsset)).all():
            path = tmp_path / "library" / row.key
            assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
            synced += 1
    return synced


def test_sigterm_mid_pass_finishes_items_in_flight_and_exits_0(tmp_path: Path) -> None:
    with Sandbox(seed=21, licenses=40) as sandbox:
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="slow", delay=1.0, times=-1))
        config = sandbox_config(tmp_path, sandbox.url, sync={"grace": "20s", "concurrency": 4})
        process = _start(config, "sync")
        _wait_for(lambda: sandbox.count("GET", "/download/") >= 6, timeout=30)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=40)
        stopped_after = time.monotonic() - signalled
        assert code == 0
        assert stopped_after < 20
        stored = _assert_counted_means_stored(tmp_path)
        counts = StateStore(f"sqlite:///{tmp_path / 'state.db'}").status_counts()
        assert counts["synced"] >= stored > 0  # the items in flight were finished
        assert counts["queued"] > 0  # and no new ones were taken
        downloads_started = sandbox.count("GET", "/download/")
        assert downloads_started < 40
        sandbox.faults.clear()
        assert run_syncd("sync", config=config).code == 0  # the next pass continues
        assert StateStore(f"sqlite:///{tmp_path / 'state.db'}").status_counts()["queued"] == 0


def test_one_shot_sync_writes_textfile_metrics(sandbox: Sandbox, tmp_path: Path) -> None:
    textfile = tmp_path / "syncd.prom"
    config = sandbox_config(tmp_path, sandbox.url, metrics={"listen": "", "textfile": str(textfile)})
    assert run_syncd("sync", config=config).code == 0
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    assert families["syncd_passes"].samples[0].labels == {"command": "sync", "exit_code": "0"}
    assert any(s.value > 0 for s in families["syncd_items"].samples if s.labels.get("outcome") == "synced")
