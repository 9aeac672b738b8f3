"""`syncd worker`: fetch and store queued items from a shared PostgreSQL state until a signal.

Discovery stays with the one process holding the lock (`sync`, `run`, `backfill`); workers
take items with a lease (a conditional UPDATE: the first to set it wins, the others move
on), renew it while they work, and give it back when they stop. A worker that dies simply
stops renewing: its items are free again within a minute. Workers neither take nor wait for
the lock. All processes share one view of the upstream's rate limit through the database.
"""

from __future__ import annotations

import threading

import structlog

from syncd.config import Config
from syncd.engine import PassOptions
from syncd.errors import ConfigError
from syncd.http import SharedRateGate
from syncd.runtime import build_destinations, build_engine, build_sources, close_all
from syncd.state import StateStore
from syncd.stopping import StopSignals, exit_after

log = structlog.get_logger("syncd.worker")
HEARTBEAT_SECONDS = 10.0


def run_worker(config: Config) -> int:
    """Work until SIGTERM/SIGINT; returns the exit code."""
    if not config.state.url.startswith("postgresql"):
        raise ConfigError("`syncd worker` needs a shared PostgreSQL state (postgresql+psycopg://…); "
                          f"this one is {config.state.url.split(':', 1)[0]}", key="state.url")
    store = StateStore(config.state.url)
    gate = SharedRateGate(config.sync.max_wait, store)
    sources = build_sources(config, gate)
    destinations = build_destinations(config)
    engine = build_engine(config, store, sources, destinations)
    store.register_worker(engine.owner)
    stop_heartbeat = threading.Event()

    def heartbeat() -> None:
        while not stop_heartbeat.wait(HEARTBEAT_SECONDS):
            try:
                store.worker_heartbeat(engine.owner)
            except Exception:  # noqa: BLE001 - the next beat retries
                log.warning("worker_heartbeat_failed", exc_info=True)

    threading.Thread(target=heartbeat, name="syncd-worker-heartbeat", daemon=True).start()

    def give_back() -> None:
        try:
            store.release_owner(engine.owner)  # unfinished items go back to the queue at once
            store.worker_heartbeat(engine.owner, stopped=True)
        except Exception:  # noqa: BLE001 - leases expire by themselves within a minute
            log.warning("worker_release_failed", exc_info=True)

    def first(name: str) -> None:
        log.info("worker_stopping", signal=name, grace=config.sync.grace)
        engine.request_stop()
        exit_after(config.sync.grace, before=give_back)

    def second(_name: str) -> None:
        exit_after(0, before=give_back)

    log.info("worker_started", owner=engine.owner)
    with StopSignals(first, second):
        result = engine.work_forever(PassOptions(command="worker", respect_backoff=True))
    stop_heartbeat.set()
    engine.close()
    store.release_owner(engine.owner)
    store.worker_heartbeat(engine.owner, stopped=True)
    close_all(sources, destinations)
    log.info("worker_stopped", **result.counts())
    return result.stop.exit_code if result.stop is not None else 0
