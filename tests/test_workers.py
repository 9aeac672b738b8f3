"""Many processes on one PostgreSQL state: a leader and workers, one queue, one rate limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlmodel import select

from syncd.models import StoredAsset
from syncd.sandbox import FaultRule, Sandbox
from syncd.state import StateStore
from tests.helpers import TOKEN_ENV, library_files, run_syncd, sandbox_config


def _worker(config: Path) -> subprocess.Popen:
    # Output goes to a file next to the config (a full pipe would block the worker); _stop shows it on failure.
    log = open(config.parent / f"worker-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, "-m", "syncd.cli", "--log-format", "json", "--config", str(config),
                                "worker"], env={**os.environ, TOKEN_ENV: "sandbox-token"},
                               stdout=log, stderr=subprocess.STDOUT)
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    log.close()
    return process


def _tail(worker: subprocess.Popen) -> str:
    return worker.log_path.read_text(errors="replace")[-3000:]  # type: ignore[attr-defined]


def _stop(workers: list[subprocess.Popen]) -> list[int]:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    return [worker.wait(timeout=60) for worker in workers]


def _redownloads(sandbox: Sandbox) -> list[str]:
    return [c.path.split("/")[4] for c in sandbox.calls if c.method == "POST" and c.path.endswith("/downloads")
            and c.status == 200]


def test_a_leader_and_three_workers_sync_everything_exactly_once(pg_url: str, tmp_path: Path) -> None:
    with Sandbox(seed=51, licenses=0) as sandbox:
        sandbox.add_licenses(600, media_type="image", is_downloadable=True, file_bytes=8 * 1024)
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="slow", delay=0.01, times=-1))
        config = sandbox_config(tmp_path, sandbox.url, state_url=pg_url)
        StateStore(pg_url)  # migrate once before the crowd arrives
        workers = [_worker(config) for _ in range(3)]
        try:
            leader = run_syncd("sync", config=config, timeout=600)
            assert leader.code == 0, leader.stderr[-2000:]
        finally:
            codes = _stop(workers)
        assert codes == [0, 0, 0], "\n".join(_tail(w) for w, code in zip(workers, codes) if code)
        store = StateStore(pg_url)
        assert store.status_counts() == {"synced": 600, "queued": 0, "failed": 0, "skipped": 0}
        redownloads = _redownloads(sandbox)
        assert len(redownloads) == len(set(redownloads)) == 600  # no item fetched by two processes
        assets, sidecars = library_files(tmp_path / "library")
        assert len(assets) == len(sidecars) == 600
        with store.read() as session:
            assert len(session.exec(select(StoredAsset)).all()) == 600
        report = run_syncd("status", "--json", config=config)
        assert report.code == 0
        import json
        workers_seen = json.loads(report.stdout)["workers"]
        assert len(workers_seen) == 3 and all(w["stopped_at"] for w in workers_seen)


def test_a_killed_worker_leaves_nothing_lost_or_doubled(pg_url: str, tmp_path: Path) -> None:
    with Sandbox(seed=52, licenses=0) as sandbox:
        sandbox.add_licenses(60, media_type="image", is_downloadable=True, file_bytes=64 * 1024)
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="slow", delay=0.3, times=-1))
        config = sandbox_config(tmp_path, sandbox.url, state_url=pg_url)
        StateStore(pg_url)
        # Discovery first (nothing fetched: every download would be slow), then a worker takes items.
        victim = _worker(config)
        survivor = None
        try:
            leader = subprocess.Popen([sys.executable, "-m", "syncd.cli", "--config", str(config), "sync"],
                                      env={**os.environ, TOKEN_ENV: "sandbox-token"},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if sandbox.count("GET", "/download/") >= 8:
                    break
                time.sleep(0.1)
            victim.send_signal(signal.SIGKILL)  # mid-download, items in hand
            victim.wait()
            survivor = _worker(config)
            assert leader.wait(timeout=300) == 0
        finally:
            _stop([w for w in (victim, survivor) if w is not None])
        assert StateStore(pg_url).status_counts() == {"synced": 60, "queued": 0, "failed": 0, "skipped": 0}
        assets, sidecars = library_files(tmp_path / "library")
        assert len(assets) == len(sidecars) == 60
        assert not [p for p in (tmp_path / "library").rglob("*") if "syncd-tmp" in p.name]


def test_workers_share_one_rate_limit(pg_url: str, tmp_path: Path) -> None:
    with Sandbox(seed=53, licenses=0, rate_limit=(40, 2.0)) as sandbox:
        sandbox.add_licenses(150, media_type="image", is_downloadable=True, file_bytes=4 * 1024)
        config = sandbox_config(tmp_path, sandbox.url, state_url=pg_url, sync={"max_wait": "30s"})
        StateStore(pg_url)
        workers = [_worker(config) for _ in range(3)]
        try:
            leader = run_syncd("sync", config=config, timeout=600)
            problems = run_syncd("status", "--json", config=config).stdout
            assert leader.code == 0, problems
        finally:
            _stop(workers)
        assert StateStore(pg_url).status_counts()["synced"] == 150
        api = [c for c in sandbox.calls if c.path.startswith("/v2/")]
        served = [c for c in api if c.status != 429]
        refused = [c for c in api if c.status == 429]
        assert len(served) > 40  # the work needed several quota windows
        # Everyone pauses on what one process learns: per quota window, at most the requests
        # that can be in flight when the quota runs out (4 processes x 4 threads), not one per
        # request. Measured under load: 12-19 refusals in 3 windows.
        windows = max(1, round((max(c.at for c in api) - min(c.at for c in api)) / 2.0))
        in_flight = 4 * 4
        assert len(refused) <= in_flight * windows, (len(refused), windows)
        window_start, in_window = None, 0
        for call in sorted(served, key=lambda c: c.at):
            if window_start is None or call.at >= window_start + 2.0:
                window_start, in_window = call.at, 0
            in_window += 1
            assert in_window <= 40


def test_an_idle_worker_leaves_skipped_items_to_the_passes(pg_url: str, tmp_path: Path) -> None:
    # Skipped items are reconsidered once per pass; a worker that took them reconsidered them
    # over and over (177 attempts in 4 s for 3 items, each a write and a log line).
    with Sandbox(seed=54, licenses=0) as sandbox:
        sandbox.add_licenses(4, media_type="image", is_downloadable=True, file_bytes=4 * 1024)
        sandbox.add_licenses(3, media_type="image", is_downloadable=False)
        config = sandbox_config(tmp_path, sandbox.url, state_url=pg_url)
        leader = run_syncd("sync", config=config)
        assert leader.code == 0, leader.stderr[-2000:]
        assert StateStore(pg_url).status_counts()["skipped"] == 3
        worker = _worker(config)
        try:
            time.sleep(3)
        finally:
            assert _stop([worker]) == [0]
        attempts = [line for line in _tail(worker).splitlines() if '"event": "item"' in line]
        assert attempts == []
        again = run_syncd("sync", config=config)  # the next pass still reconsiders them
        assert again.code == 0 and "3 skipped" in again.stdout, again.stdout
