"""The state layer on SQLite and on the real PostgreSQL: migrations, queue, claims, frontier, lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, update
from sqlmodel import Session

from syncd.errors import LockHeld
from syncd.models import Lock
from syncd.records import LicenseRecord
from syncd.sandbox import Sandbox
from syncd.state import LOCK_NAME, MIGRATIONS, SCHEMA_REVISION, StateStore, utcnow
from tests.helpers import run_syncd, sandbox_config


def _license(number: int, media_id: str | None = None) -> LicenseRecord:
    return LicenseRecord(source="s", media_type="image", license_id=f"i{number}", media_id=media_id or str(1000 + number),
                         licensed_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=number), size="huge",
                         is_downloadable=True, record={"id": f"i{number}"})


def test_migrations_create_the_schema_at_head(state_url: str) -> None:
    store = StateStore(state_url)
    assert store.schema_version() == "0001"
    tables = set(inspect(store.engine).get_table_names())
    assert {"items", "stored_assets", "frontiers", "backfill_cursors", "runs", "locks", "alembic_version"} <= tables
    StateStore(state_url)  # opening again is a no-op upgrade
    assert store.schema_version() == "0001"


def test_the_schema_revision_constant_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    store = StateStore(sqlite_url)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_discovery_records_each_license_once(state_url: str) -> None:
    store = StateStore(state_url)
    assert store.record_discovered([_license(1), _license(2)]) == 2
    assert store.record_discovered([_license(2), _license(3)]) == 1
    assert store.status_counts() == {"synced": 0, "queued": 3, "failed": 0, "skipped": 0}


def test_claims_are_exclusive_until_the_lease_expires(state_url: str) -> None:
    store = StateStore(state_url)
    store.record_discovered([_license(1), _license(2)])
    ids = [item.id for item in store.due_items(["s"], respect_backoff=False)]
    assert store.claim(ids, "worker-a", timedelta(seconds=60))
    assert not store.claim(ids[:1], "worker-b", timedelta(seconds=60))
    assert store.due_items(["s"], respect_backoff=False) == []  # leased items are not handed out
    with store.write() as session:
        from syncd.models import Item
        session.execute(update(Item).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert store.claim(ids[:1], "worker-b", timedelta(seconds=60))


def test_failures_count_attempts_then_park_until_retry(state_url: str) -> None:
    store = StateStore(state_url)
    store.record_discovered([_license(1)])
    ids = [i.id for i in store.due_items(["s"], respect_backoff=False)]
    assert not store.record_failure(ids, "HTTP 500", max_attempts=2)
    item = store.due_items(["s"], respect_backoff=False)[0]
    assert item.attempts == 1 and item.next_attempt_at is not None and item.reason == "HTTP 500"
    assert store.due_items(["s"], respect_backoff=True) == []  # backing off
    assert store.record_failure(ids, "HTTP 500", max_attempts=2)
    assert store.status_counts()["failed"] == 1
    assert store.due_items(["s"], respect_backoff=False) == []
    assert store.retry(None) == (1, [])
    assert store.status_counts()["queued"] == 1


def test_frontier_round_trip(state_url: str) -> None:
    store = StateStore(state_url)
    assert store.frontier("s", "image") is None
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store.set_frontier("s", "image", "i9", moment)
    frontier = store.frontier("s", "image")
    assert frontier is not None and frontier.license_id == "i9" and frontier.licensed_at == moment.replace(tzinfo=None)


def test_the_lock_names_its_holder(state_url: str) -> None:
    store = StateStore(state_url)
    with store.lock("sync"):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            with StateStore(state_url).lock("backfill"):
                pass
    with store.lock("sync"):
        pass  # released on exit


def test_a_lock_left_by_sigkill_is_recovered_at_once(state_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from syncd.state import StateStore
        with StateStore({state_url!r}).lock("sync"):
            print("held", flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    store = StateStore(state_url)
    with pytest.raises(LockHeld):
        with store.lock("sync"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with store.lock("sync"):
        pass


def test_a_lock_of_a_vanished_host_is_recovered_when_its_lease_expires(state_url: str) -> None:
    store = StateStore(state_url)
    lease = store.lock("sync")
    lease.__enter__()
    with Session(store.engine) as session:  # pretend the holder was a pod on another node
        session.execute(update(Lock).where(Lock.name == LOCK_NAME).values(host="pod-gone", pid=1))
        session.commit()
    with pytest.raises(LockHeld, match="pod-gone"):
        with store.lock("sync"):
            pass
    with Session(store.engine) as session:
        session.execute(update(Lock).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    with store.lock("sync"):
        pass


def test_a_whole_sync_works_on_each_backend(state_url: str, sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url, state_url=state_url)
    assert run_syncd("sync", config=config).code == 0
    counts = StateStore(state_url).status_counts()
    assert counts["queued"] == 0 and counts["failed"] == 0 and counts["synced"] > 0
    assert run_syncd("sync", config=config).code == 0
    status = run_syncd("status", config=config)
    assert status.code == 0 and f"synced {counts['synced']}" in status.stdout


def test_many_processes_may_mark_a_destination_inventory_complete_at_once(state_url: str) -> None:
    # Every process starting on an empty destination records it; on PostgreSQL a worker once
    # died of a duplicate key here (check-then-insert). Separate stores stand for processes.
    stores = [StateStore(state_url) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def mark(store: StateStore) -> None:
        barrier.wait()
        try:
            store.mark_inventory_complete("library")
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=mark, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(store.inventory_complete("library") for store in stores)
