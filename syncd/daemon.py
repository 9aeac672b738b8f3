"""`syncd run`: passes on a schedule (APScheduler 3), metrics and health, a graceful stop.

One pass at start-up, then on ``[schedule]``; never two at once (``max_instances=1``, missed
runs coalesced); a pass that fails is logged and the daemon goes on. SIGTERM/SIGINT: no new
item is taken, items in flight finish within ``[sync] grace``, then exit 0; a second signal
exits at once (whatever was in flight stays queued; nothing half-stored counts as synced).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import Config
from syncd.engine import PassOptions, PassResult
from syncd.errors import ConfigError, LockHeld, SyncdError
from syncd.http import RateGate, SharedRateGate
from syncd.metrics import Health, Metrics, serve_metrics
from syncd.notify import notify
from syncd.runtime import build_destinations, build_engine, build_sources, close_all
from syncd.state import StateStore
from syncd.stopping import StopSignals

log = structlog.get_logger("syncd.daemon")
DEFAULT_INTERVAL = 30 * 60.0


def make_trigger(config: Config) -> tuple[Any, float]:
    """The APScheduler trigger for ``[schedule]`` and its period in seconds."""
    schedule = config.schedule
    if schedule.cron:
        try:
            trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
        except ValueError as error:
            raise ConfigError(str(error), key="schedule.cron") from None
        first = trigger.get_next_fire_time(None, datetime.now(UTC))
        second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
        period = (second - first).total_seconds() if first and second else DEFAULT_INTERVAL
        return trigger, max(period, 1.0)
    interval = schedule.interval or DEFAULT_INTERVAL
    return IntervalTrigger(seconds=interval, timezone=UTC), interval


class Daemon:
    """The long-running process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = StateStore(config.state.url)
        self.gate = (SharedRateGate(config.sync.max_wait, self.store) if self.store.shared
                     else RateGate(config.sync.max_wait))
        self.trigger, period = make_trigger(config)
        self.metrics = Metrics()
        self.health = Health(period)
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.engine: Any = None
        # Secrets and destinations are checked now: a wrong config fails at start, not at 3 a.m.
        for source in build_sources(config, self.gate):
            source.close()

    def one_pass(self) -> None:
        """A scheduled pass; never raises (a failed pass is logged, the daemon goes on)."""
        if self.stopping.is_set():
            return
        self.idle.clear()
        self.health.pass_started()
        started = time.monotonic()
        sources: list[Any] = []
        destinations: list[Any] = []
        result: PassResult | None = None
        problem = None
        try:
            sources = build_sources(self.config, self.gate)
            destinations = build_destinations(self.config)
            self.engine = build_engine(self.config, self.store, sources, destinations, self.metrics.reporter())
            if self.stopping.is_set():
                self.engine.request_stop()
            result = self.engine.run_recorded_pass(PassOptions(command="run", respect_backoff=True))
        except LockHeld as error:
            problem = None
            log.warning("pass_skipped", reason=str(error))
        except SyncdError as error:
            problem = str(error)
            log.error("pass_failed", error=problem, exit_code=error.exit_code)
        except Exception as error:  # noqa: BLE001 - the daemon outlives a bug in one pass
            problem = f"internal error: {error!r}"
            log.exception("pass_crashed")
        finally:
            close_all(sources, destinations)
        seconds = time.monotonic() - started
        if result is not None:
            self.metrics.record_pass("run", result, seconds, sources, self.gate, self.store.status_counts())
            log.info("pass_summary", command="run", seconds=round(seconds, 3), exit_code=result.exit_code,
                     **result.counts())
            notify(f"STATUS=last pass: {result.synced} synced, {result.failed} failed, exit {result.exit_code}")
        self.health.pass_finished(result, problem)
        self.idle.set()

    def run(self) -> int:
        """Serve until a signal; returns the exit code."""
        server = None
        if self.config.metrics.listen:
            try:
                server = serve_metrics(self.config.metrics.listen, self.metrics, self.health)
            except (OSError, ValueError) as error:
                raise ConfigError(f"cannot listen on {self.config.metrics.listen!r}: {error}", key="metrics.listen") from None
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(self.one_pass, self.trigger, id="pass", max_instances=1, coalesce=True,
                          misfire_grace_time=None, next_run_time=datetime.now(UTC))
        with StopSignals(self._stop, 130, "syncd: second signal, exiting now (items in flight stay queued)"):
            scheduler.start()
            notify("READY=1", "STATUS=scheduler running")
            log.info("daemon_started", schedule=self.config.schedule.cron or f"every {self.health.period:.0f}s",
                     metrics=self.config.metrics.listen or None, pid=os.getpid())
            while not self.stopping.wait(1.0):
                pass
            scheduler.shutdown(wait=False)
            finished = self.idle.wait(self.config.sync.grace)
            log.info("daemon_stopped", items_in_flight_finished=finished)
            if server is not None:
                server.shutdown()
            return 0

    def _stop(self, name: str) -> None:
        log.info("stopping", signal=name, grace=self.config.sync.grace)
        notify("STOPPING=1")
        self.stopping.set()
        if self.engine is not None:
            self.engine.request_stop()
