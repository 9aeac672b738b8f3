"""One pass: discover → plan → fetch → store → record.

Discovery pages each source's history newest first and stops at the frontier (the newest
license of the last pass that walked back to its predecessor); every license gets a state row
as soon as its page is read, and the frontier moves only when discovery completes. The work
is then done per asset (one media item with all its due licenses) by a bounded pool of
threads; an item counts as synced only after its bytes were verified and stored at every
destination. Nothing here knows which kind of source or destination it holds.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog

from syncd import sidecar
from syncd.destinations.base import Destination, ObjectInfo, StoredObject
from syncd.errors import (
    DownloadRefused,
    Fatal,
    IntegrityError,
    ItemDeferred,
    ItemFailed,
    ItemSkipped,
    OutcomeUnknown,
    TransientError,
    UpstreamUnreachable,
)
from syncd.media import content_type_for, extension_for, normalise_ext, sniff
from syncd.models import (
    INTENT_ABANDONED,
    INTENT_FAILED,
    INTENT_UNKNOWN,
    SKIPPED,
    SYNCED,
    Item,
)
from syncd.naming import KeyTemplate, companion_key, slugify
from syncd.records import DownloadedFile, LicenseRecord
from syncd.sizes import human_bytes
from syncd.sources.base import Source
from syncd.state import StateStore, to_utc_naive, utcnow

log = structlog.get_logger("syncd.engine")

CHUNK = 1 << 20
DETAILS_CHUNK = 200  # assets whose details are fetched together before their work is queued
DOWNLOAD_TRIES = 3  # per attempt: a truncated body or an expired link gets a fresh URL at once
LEASE = timedelta(seconds=60)
LEASE_RENEW_SECONDS = 20.0
PLAN_BATCH = 2000  # items planned per round: a backfill of millions never sits in memory at once
# Seconds between looks at the shared queue: what workers still hold (the discovering
# process) or what is due (an idle worker). Each look is one indexed query; a longer wait is
# time a pass can sit idle at its start (workers) and its end (the discovering process).
SHARED_POLL = 0.2
DEAD_LEASE_SWEEP = 1.0  # seconds between sweeps for leases of processes of this host that died
DEFER = timedelta(minutes=5)  # a deferred item is looked at again by the daemon after this
RECONCILE_PATIENCE = timedelta(hours=6)  # how long a licensing call's license may take to show in the history
Opener = Callable[[dict[str, str]], AbstractContextManager[httpx.Response]]  # headers → streaming response


@dataclass(frozen=True)
class PassOptions:
    """What the command asked of this pass."""

    command: str = "sync"  # sync | backfill | run
    dry_run: bool = False
    limit: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    media: str | None = None
    source: str | None = None
    respect_backoff: bool = False  # the daemon waits out item backoff; a one-shot command retries now


@dataclass
class PassResult:
    """What a pass did."""

    discovered: int = 0
    synced: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0  # waiting for a licensing call's outcome to show in the history
    bytes: int = 0
    planned: int = 0
    stop: Fatal | None = None
    dry_run_plan: list[dict[str, Any]] = field(default_factory=list)
    handled: set[int] = field(default_factory=set)  # item ids this process finished, whatever the outcome

    @property
    def exit_code(self) -> int:
        """The contract's exit code for this outcome."""
        if self.stop is not None:
            return self.stop.exit_code
        return 1 if self.failed or self.deferred else 0

    @property
    def outcome(self) -> str:
        """One word for the run log: ok, partial, or the error that stopped the pass."""
        if self.stop is not None:
            return type(self.stop).__name__
        return "partial" if self.exit_code else "ok"

    def counts(self) -> dict[str, int]:
        """Counts for logs, the run log and the summary."""
        return {"discovered": self.discovered, "synced": self.synced, "failed": self.failed,
                "skipped": self.skipped, "deferred": self.deferred, "bytes": self.bytes}


class Reporter:
    """Progress callbacks; the CLI shows them on a terminal. Defaults do nothing."""

    def discovering(self, source: str, media_type: str, total: int | None) -> None: ...
    def discovered(self, new: int) -> None: ...
    def planned(self, items: int, total_bytes: int | None) -> None: ...
    def item_done(self, outcome: str, size: int, *, source: str = "", media_type: str = "",
                  destinations: tuple[str, ...] = (), items: int = 1) -> None: ...


class Reporters(Reporter):
    """Several reporters as one (progress on the terminal and metrics, say)."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def discovering(self, source: str, media_type: str, total: int | None) -> None:
        for reporter in self.reporters:
            reporter.discovering(source, media_type, total)

    def discovered(self, new: int) -> None:
        for reporter in self.reporters:
            reporter.discovered(new)

    def planned(self, items: int, total_bytes: int | None) -> None:
        for reporter in self.reporters:
            reporter.planned(items, total_bytes)

    def item_done(self, outcome: str, size: int, *, source: str = "", media_type: str = "",
                  destinations: tuple[str, ...] = (), items: int = 1) -> None:
        for reporter in self.reporters:
            reporter.item_done(outcome, size, source=source, media_type=media_type, destinations=destinations,
                               items=items)


@dataclass
class AssetWork:
    """One media item and its due licenses: the unit the workers take."""

    source: Source
    media_type: str
    media_id: str
    items: list[Item]
    planned_at: datetime | None = None  # claimed only if no other process changed its items since


class Engine:
    """Runs passes of one configuration against one state database."""

    def __init__(
        self,
        store: StateStore,
        sources: Sequence[Source],
        destinations: Sequence[Destination],
        template: KeyTemplate,
        *,
        concurrency: int = 4,
        max_attempts: int = 5,
        reporter: Reporter | None = None,
    ) -> None:
        self.store = store
        self.sources = list(sources)
        self.destinations = list(destinations)
        self.template = template
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.reporter = reporter or Reporter()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._fatal: Fatal | None = None
        self._lock = threading.Lock()
        self._inventory: dict[str, bool] = {}
        self._last_sweep = float("-inf")
        self._relicensed: dict[str, int] = {}  # licensing calls this pass, per source
        self._allotment: dict[str, int | None] = {}
        self._renewer: threading.Thread | None = None
        self._closed = threading.Event()

    def close(self) -> None:
        """Stop background threads (the lease renewer)."""
        self._closed.set()

    def request_stop(self) -> None:
        """Take no new item; items in flight finish (used on SIGTERM/SIGINT)."""
        self._stop.set()

    # --- the pass ---------------------------------------------------------------------------------

    def run_recorded_pass(self, options: PassOptions) -> PassResult:
        """A pass under the state lock, entered in the run log (raises ``LockHeld``)."""
        with self.store.lock(options.command):
            run_id = self.store.start_run(options.command)
            result = self.run_pass(options)
            self.store.finish_run(run_id, result.outcome, result.exit_code, result.counts(),
                                  str(result.stop) if result.stop else None)
        return result

    def run_pass(self, options: PassOptions) -> PassResult:
        """Discover, then fetch and store everything due. Never raises for upstream trouble."""
        result = PassResult()
        self._fatal = None
        self._relicensed.clear()
        self._allotment.clear()
        self._dry_new: list[tuple[Source, LicenseRecord]] = []
        self._dry_seen: set[str] = set()
        if not options.dry_run:
            self.store.release_dead_leases()
        try:
            for source in self._selected_sources(options):
                for media_type in self._selected_media(source, options):
                    if self._stop.is_set():
                        break
                    self._discover(source, media_type, options, result)
            if options.dry_run:
                self._dry_run_plan(options, result)
                return result
            if not self._stop.is_set():
                self._work(options, result)
        except Fatal as stop:
            result.stop = stop
        if result.stop is None and self._fatal is not None:
            result.stop = self._fatal
        return result

    def _selected_sources(self, options: PassOptions) -> list[Source]:
        return [s for s in self.sources if options.source in (None, s.name)]

    def _selected_media(self, source: Source, options: PassOptions) -> list[str]:
        return [m for m in source.media_types if options.media in (None, m) or m.startswith(f"{options.media}_")]

    # --- discovery and the stop rule -----------------------------------------------------------

    def _discover(self, source: Source, media_type: str, options: PassOptions, result: PassResult) -> None:
        backfill = options.command == "backfill"
        ordered = source.history_is_ordered
        frontier = None if backfill or not ordered else self.store.frontier(source.name, media_type)
        window = f"{options.since.isoformat() if options.since else ''}..{options.until.isoformat() if options.until else ''}"
        until = options.until
        resumed = False
        if backfill and not options.dry_run:
            cursor = self.store.backfill_cursor(source.name, media_type, window)
            if cursor is not None and cursor.completed_at is None and cursor.oldest_licensed_at is not None:
                until, resumed = cursor.oldest_licensed_at, True  # an interrupted backfill continues there
        since_naive = to_utc_naive(options.since) if options.since else None
        until_naive = to_utc_naive(until) if until else None
        newest: LicenseRecord | None = None
        log.info("discovery_started", source=source.name, media_type=media_type,
                 frontier=frontier.license_id if frontier else None, resumed=resumed)
        try:
            for page in source.history(media_type, since=options.since, until=until):
                if page.page == 1:
                    self.reporter.discovering(source.name, media_type, page.total_count)
                if newest is None and page.records:
                    newest = page.records[0]
                keep, reached = self._before_frontier(page.records, frontier, since_naive, until_naive)
                self._record_page(source, keep, options, result)
                if backfill and keep and not options.dry_run:
                    self.store.save_backfill_cursor(source.name, media_type, window, keep[-1].licensed_at, False)
                if reached or self._stop.is_set():
                    break
            else:
                reached = True
        except TransientError as error:
            raise UpstreamUnreachable(f"discovery of {media_type} licenses at {source.name!r} failed: {error}") from None
        if self._stop.is_set() or options.dry_run:
            return  # an interrupted discovery never moves the frontier
        if backfill:
            self.store.save_backfill_cursor(source.name, media_type, window, None, True)
        if ordered and newest is not None and not resumed and (options.since is None and options.until is None or not backfill):
            self._advance_frontier(source.name, media_type, newest)

    @staticmethod
    def _before_frontier(
        records: list[LicenseRecord], frontier: Any, since: datetime | None, until: datetime | None
    ) -> tuple[list[LicenseRecord], bool]:
        """The records newer than the frontier (and inside the window), and whether the walk ends here."""
        keep: list[LicenseRecord] = []
        for record in records:
            licensed_at = to_utc_naive(record.licensed_at)
            if frontier is not None and (record.license_id == frontier.license_id or licensed_at < frontier.licensed_at):
                return keep, True
            if since is not None and licensed_at < since:
                return keep, True
            if until is not None and licensed_at > until + timedelta(days=1):
                continue  # the API's end_date is a date; keep the whole last day
            keep.append(record)
        return keep, False

    def _record_page(self, source: Source, keep: list[LicenseRecord], options: PassOptions, result: PassResult) -> None:
        if not keep:
            return
        if options.dry_run:
            known = self.store.known_license_ids(source.name, [r.license_id for r in keep])
            fresh = [r for r in keep if r.license_id not in known and r.license_id not in self._dry_seen]
            self._dry_seen.update(r.license_id for r in fresh)
            self._dry_new.extend((source, r) for r in fresh)
            result.discovered += len(fresh)
            return
        new = self.store.record_discovered(keep)
        result.discovered += new
        self.reporter.discovered(new)

    def _advance_frontier(self, source: str, media_type: str, newest: LicenseRecord) -> None:
        current = self.store.frontier(source, media_type)
        if current is not None and (current.license_id == newest.license_id or current.licensed_at > to_utc_naive(newest.licensed_at)):
            return
        self.store.set_frontier(source, media_type, newest.license_id, newest.licensed_at)

    def _dry_run_plan(self, options: PassOptions, result: PassResult) -> None:
        """What a real pass would license, download and upload: new licenses and the queue."""
        sources = {s.name: s for s in self._selected_sources(options)}
        work: list[tuple[Source, LicenseRecord]] = list(self._dry_new)
        for item in self.store.due_items(list(sources), respect_backoff=False):
            work.append((sources[item.source], _as_record(item)))
        budget_used: dict[str, int] = {}
        for source, record in work:
            line: dict[str, Any] = {"source": source.name, "media_type": record.media_type, "media_id": record.media_id,
                                    "license_id": record.license_id, "size": record.size, "relicense_cost": 0,
                                    "subscription_id": None}
            policy = source.relicense_policy()
            if record.is_downloadable is not False and source.can_redownload(record.media_type):
                line["action"] = f"download and upload to {len(self.destinations)} destination(s)"
            elif policy is not None and source.can_relicense(record.media_type):
                used = budget_used.get(source.name, 0)
                if used < policy.budget:
                    budget_used[source.name] = used + 1
                    line.update(action="re-license, download and upload", relicense_cost=1,
                                subscription_id=policy.subscription_id)
                else:
                    line["action"] = "skip (re-licensing budget of the pass reached)"
            else:
                line["action"] = f"skip ({_skip_reason(source, record)})"
            result.dry_run_plan.append(line)

    # --- planning and the worker pool ----------------------------------------------------------

    def _plan(self, options: PassOptions, untouched_since: datetime | None = None, limit: int | None = None,
              include_skipped: bool = True) -> list[AssetWork]:
        sources = {s.name: s for s in self._selected_sources(options)}
        planned_at = utcnow()
        items = self.store.due_items(list(sources), respect_backoff=options.respect_backoff,
                                     untouched_since=untouched_since, limit=limit, include_skipped=include_skipped)
        items = [i for i in items if i.media_type in self._selected_media(sources[i.source], options)]
        assets: dict[tuple[str, str, str], AssetWork] = {}
        for item in items:
            key = (item.source, item.media_type, item.media_id)
            if key not in assets:
                assets[key] = AssetWork(sources[item.source], item.media_type, item.media_id, [], planned_at)
            assets[key].items.append(item)
        return list(assets.values())

    def _work(self, options: PassOptions, result: PassResult) -> None:
        """Fetch and store what is due, in rounds, until nothing of this pass is left.

        On a shared (PostgreSQL) state workers take items too: the pass ends when none of them
        holds one any more; items whose worker died (lease expired) are taken over here.
        """
        started = utcnow()
        self._inventory = {d.name: self._knows_inventory(d) for d in self.destinations}
        sources = [s.name for s in self._selected_sources(options)]
        budget = options.limit
        while not self._stop.is_set():
            work = self._plan(options, untouched_since=started, limit=min(PLAN_BATCH, budget or PLAN_BATCH))
            planned = sum(len(asset.items) for asset in work)
            result.planned += planned
            if work:
                self.reporter.planned(result.planned, None)
                self._run_pool(work, result)
            if budget is not None:
                budget -= planned
                if budget <= 0:
                    return
            if work:
                continue
            if not self.store.shared:
                return
            if not self.store.leased_by_others(sources, self.owner):
                result.failed += self.store.unfinished_since(sources, started, exclude=result.handled)
                return
            self._stop.wait(SHARED_POLL)
            self._sweep_dead_leases()  # a worker killed on this host: take its items now

    def work_forever(self, options: PassOptions, poll: float = SHARED_POLL) -> PassResult:
        """`syncd worker`: take due items from the shared queue until asked to stop."""
        result = PassResult()
        self._inventory = {d.name: self._knows_inventory(d) for d in self.destinations}
        while not self._stop.is_set():
            # Skipped items are reconsidered once per pass, by the discovering process; taken
            # here, an idle worker would reconsider them over and over (dozens of times a second).
            work = self._plan(options, limit=PLAN_BATCH, include_skipped=False)
            if work:
                self._run_pool(work, result)
            else:
                self._stop.wait(poll)
                self._sweep_dead_leases()
            if self._fatal is not None:
                result.stop = self._fatal
                break
        return result

    def _sweep_dead_leases(self) -> None:
        """Free the leases of dead processes of this host, at most every ``DEAD_LEASE_SWEEP`` seconds."""
        now = time.monotonic()
        if now - self._last_sweep >= DEAD_LEASE_SWEEP:
            self._last_sweep = now
            self.store.release_dead_leases()

    def _run_pool(self, work: list[AssetWork], result: PassResult) -> None:
        spool = Path(tempfile.mkdtemp(prefix="syncd-spool-"))
        slots = threading.BoundedSemaphore(self.concurrency * 2)
        with self._lock:
            if self._renewer is None:  # one per engine: leases of items in hand live while we do
                self._renewer = threading.Thread(target=self._renew_leases, name="syncd-lease-renewer", daemon=True)
                self._renewer.start()
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="syncd-item") as pool:
                for chunk in _chunks(work, DETAILS_CHUNK):
                    if self._stop.is_set():
                        break
                    details = self._details(chunk)
                    for asset in chunk:
                        slots.acquire()
                        if self._stop.is_set():
                            slots.release()
                            break
                        future: Future[None] = pool.submit(self._process, asset, details, spool, result)
                        future.add_done_callback(lambda _f: slots.release())
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    def _knows_inventory(self, destination: Destination) -> bool:
        """Whether this state knows every syncd object at the destination (it started empty here)."""
        if self.store.inventory_complete(destination.name):
            return True
        if not self.store.has_stored(destination.name) and destination.is_empty():
            self.store.mark_inventory_complete(destination.name)
            return True
        return False

    def _renew_leases(self) -> None:
        while not self._closed.wait(LEASE_RENEW_SECONDS):
            try:
                self.store.renew_leases(self.owner, LEASE)
            except Exception:  # noqa: BLE001 - the next renewal retries; leases last a minute
                log.warning("lease_renewal_failed", exc_info=True)

    def _details(self, chunk: list[AssetWork]) -> dict[tuple[str, str, str], dict[str, Any]]:
        wanted: dict[tuple[str, str], list[str]] = {}
        for asset in chunk:
            if all(_skip_reason(asset.source, item) for item in asset.items) and not asset.source.can_relicense(asset.media_type):
                continue  # parked until the configuration allows it: no API call for it
            wanted.setdefault((asset.source.name, asset.media_type), []).append(asset.media_id)
        sources = {asset.source.name: asset.source for asset in chunk}
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        for (source_name, media_type), media_ids in wanted.items():
            try:
                by_id = sources[source_name].details(media_type, media_ids)
            except TransientError as error:
                log.warning("details_unavailable", source=source_name, media_type=media_type, error=str(error))
                continue  # the items still sync; their sidecars get what the history says
            for media_id, entry in by_id.items():
                found[(source_name, media_type, media_id)] = entry
        return found

    def _process(self, asset: AssetWork, details: dict[tuple[str, str, str], dict[str, Any]], spool: Path, result: PassResult) -> None:
        if self._stop.is_set():
            return
        ids = [item.id for item in asset.items if item.id is not None]
        if not self.store.claim(ids, self.owner, LEASE, asset.planned_at):
            return  # another worker has it
        started = time.monotonic()
        outcome, size, key, reason = "synced", 0, None, None
        try:
            size, key, stored = self._sync_asset(asset, details.get((asset.source.name, asset.media_type, asset.media_id)), spool)
            ids = [item.id for item in asset.items if item.id is not None]  # with a license bought just now
            self.store.complete(ids, stored, (asset.source.name, asset.media_type, asset.media_id))
        except ItemSkipped as skip:
            outcome, reason = "skipped", str(skip)
            self.store.set_status(ids, SKIPPED, reason)
        except ItemDeferred as deferral:
            outcome, reason = "deferred", str(deferral)
            self.store.defer(ids, reason, DEFER)
        except ItemFailed as failure:
            outcome, reason = "failed", str(failure)
            self.store.record_failure(ids, reason, self.max_attempts, final=failure.final)
        except Fatal as fatal:
            outcome, reason = "stopped", str(fatal)
            self.store.release(ids, self.owner)
            self._halt(fatal)
        except Exception as error:  # noqa: BLE001 - a bug must fail the item visibly, not kill the pass
            outcome, reason = "failed", f"internal error: {error!r}"
            log.exception("item_internal_error", media_id=asset.media_id)
            self.store.record_failure(ids, reason, self.max_attempts)
        self._count(result, outcome, len(ids), size)
        with self._lock:
            result.handled.update(ids)
        # An item still skipped for the same reason is reconsidered every pass: said once, at info.
        unchanged = outcome == "skipped" and all(i.status == SKIPPED and i.reason == reason for i in asset.items)
        say = log.debug if unchanged else log.info
        say("item", outcome=outcome, source=asset.source.name, media_type=asset.media_type,
            media_id=asset.media_id, license_ids=[i.license_id for i in asset.items], key=key,
            bytes=size, duration=round(time.monotonic() - started, 3), reason=reason)
        self.reporter.item_done(outcome, size, source=asset.source.name, media_type=asset.media_type,
                                destinations=tuple(d.name for d in self.destinations) if outcome == "synced" else (),
                                items=len(ids))

    def _count(self, result: PassResult, outcome: str, items: int, size: int) -> None:
        with self._lock:
            if outcome == "synced":
                result.synced += items
                result.bytes += size
            elif outcome == "failed":
                result.failed += items
            elif outcome == "skipped":
                result.skipped += items
            elif outcome == "deferred":
                result.deferred += items

    def _halt(self, fatal: Fatal) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = fatal
        self._stop.set()

    # --- one asset ----------------------------------------------------------------------------

    def _sync_asset(self, asset: AssetWork, details: dict[str, Any] | None,
                    spool: Path) -> tuple[int, str | None, list[dict[str, Any]]]:
        """Bring every destination up to date; returns (bytes transferred, key, stored rows to record)."""
        source = asset.source
        due = {item.license_id for item in asset.items}
        licenses = [i for i in self.store.licenses_of_media(source.name, asset.media_type, asset.media_id)
                    if i.status == SYNCED or i.license_id in due]
        at = self.store.stored_by_destination(source.name, asset.media_type, asset.media_id)
        stored = {d.name: at.get(d.name) for d in self.destinations}
        if source.relicense_policy() is not None:
            self._link_discovered_purchase(asset, licenses)
        candidates = [i for i in licenses if _skip_reason(source, i) is None]
        opener: Opener | None = None
        if not candidates:
            if all(stored.values()):
                return 0, self._update_sidecars(asset, licenses, details, stored, self.destinations), []
            bought = next((i for i in licenses if i.relicensed_from), None)
            if bought is not None:
                opener = self._bought_link(bought, asset)
            elif source.can_relicense(asset.media_type):
                bought, opener = self._acquire(asset)
            else:
                raise ItemSkipped(_skip_reason(source, asset.items[0]) or "cannot be fetched")
            if bought not in asset.items:
                asset.items.append(bought)  # synced with the others: it is never synced as new
                licenses.append(bought)
            candidates = [bought]
        best = max(candidates, key=lambda i: (source.size_rank(asset.media_type, i.size), i.licensed_at))
        best_rank = source.size_rank(asset.media_type, best.size)
        need_file = [d for d in self.destinations
                     if stored[d.name] is None or (d.replaces_files and
                                                   source.size_rank(asset.media_type, stored[d.name].size) < best_rank)]
        sidecar_only = [d for d in self.destinations if d not in need_file]
        key = None
        if sidecar_only:
            key = self._update_sidecars(asset, licenses, details, stored, sidecar_only)
        if not need_file:
            return 0, key, []
        record = _as_record(best)
        ext = normalise_ext(source.extension(record, details))
        # Never tried before, at a destination whose every object this state knows: nothing can be
        # there, so no question is asked. Otherwise an earlier try may have stored it: look first.
        first_try = all(item.claims == 0 for item in asset.items)
        present: dict[str, StoredObject | None] = {
            d.name: None for d in need_file if first_try and self._inventory.get(d.name)}
        known_absent = {name for name in present if stored[name] is None}  # no object of this asset at all
        if ext is not None:
            key = self._key(best, details, ext)
            for destination in need_file:
                if destination.name not in present:
                    present[destination.name] = destination.stat(key)
            need_file = [d for d in need_file if not self._adopt(asset, d, key, best, licenses, present[d.name])]
            if not need_file:
                return 0, key, []
        expected = source.expected_bytes(record, details)
        if expected is not None:
            for destination in need_file:  # a file a destination cannot take is not downloaded
                destination.refuse_size(key or record.license_id, expected)
        path = spool / f"{uuid.uuid4().hex}.part"
        scratch = [path]
        try:
            downloaded = self._download(path, lambda headers: source.open_download(record, headers),
                                        expected, record.license_id, opener)
            ext = ext or normalise_ext(downloaded.ext) or "bin"
            key = self._key(best, details, ext)
            companions = self._fetch_companions(source, record, key, spool, scratch)
            content_type = downloaded.content_type or content_type_for(ext)
            file_entry = {"key": key, "bytes": downloaded.bytes, "sha256": downloaded.sha256, "content_type": content_type}
            entries = {c.name: c.entry for c in companions}
            documents = {keeps: self._sidecar(asset, licenses, details, file_entry, entries if keeps else {})
                         for keeps in {d.stores_companions for d in need_file}}
            info = ObjectInfo(size=downloaded.bytes, sha256=downloaded.sha256, content_type=content_type,
                              source=source.name, media_type=asset.media_type, media_id=asset.media_id,
                              license_id=best.license_id)
            rows = []
            for destination in need_file:
                document = documents[destination.stores_companions]
                existing = present[destination.name] if destination.name in present else destination.stat(key)
                if existing is None or existing.sha256 != downloaded.sha256:
                    destination.put(key, path, replace(info, sidecar=sidecar.decode(document) or {},
                                                       known_absent=destination.name in known_absent))
                if destination.stores_companions:
                    self._put_companions(destination, companions, info)
                destination.put_sidecar(key, document)  # the sidecar last: it marks the asset complete
                rows.append(dict(source=source.name, media_type=asset.media_type, media_id=asset.media_id,
                                 destination=destination.name, key=key, sha256=downloaded.sha256,
                                 size_bytes=downloaded.bytes, size=best.size,
                                 license_ids=[i.license_id for i in licenses]))
            return downloaded.bytes + sum(c.entry["bytes"] for c in companions), key, rows
        finally:
            for scratch_path in scratch:
                scratch_path.unlink(missing_ok=True)

    def _fetch_companions(self, source: Source, record: LicenseRecord, key: str, spool: Path,
                          scratch: list[Path]) -> list["_Companion"]:
        """The files the upstream hands out with this one (an audio track's stems archive), downloaded."""
        fetched = []
        for name in source.companions(record):
            path = spool / f"{uuid.uuid4().hex}.part"
            scratch.append(path)
            file = self._download(path, lambda headers, n=name: source.open_companion(record, n, headers, fresh=True),
                                  None, f"{record.license_id} {name}",
                                  first=lambda headers, n=name: source.open_companion(record, n, headers))
            ext = normalise_ext(file.ext) or "bin"
            fetched.append(_Companion(name, path, {
                "key": companion_key(key, name, ext), "bytes": file.bytes, "sha256": file.sha256,
                "content_type": file.content_type or content_type_for(ext)}))
        return fetched

    @staticmethod
    def _put_companions(destination: Destination, companions: list["_Companion"], info: ObjectInfo) -> None:
        """Store each companion next to its asset, unless the same bytes are there already."""
        for companion in companions:
            entry = companion.entry
            there = destination.stat(entry["key"])
            if there is None or there.sha256 != entry["sha256"]:
                destination.put(entry["key"], companion.path, replace(
                    info, size=entry["bytes"], sha256=entry["sha256"], content_type=entry["content_type"]))

    def _key(self, license: Item, details: dict[str, Any] | None, ext: str) -> str:
        details = details or {}
        values = {
            "source": license.source,
            "media_type": license.media_type,
            "media_id": license.media_id,
            "license_id": license.license_id,
            "license": license.license,
            "size": license.size,
            "ext": ext,
            "slug": slugify(details.get("description")),
            "contributor": str((details.get("contributor") or {}).get("id") or ""),
            "original_filename": details.get("original_filename") or "",
            "username": license.username,
            "licensed": license.licensed_at,
        }
        try:
            return self.template.render(values)
        except ValueError as error:
            raise ItemFailed(f"cannot name this asset safely: {error}") from None

    def _sidecar(self, asset: AssetWork, licenses: list[Item], details: dict[str, Any] | None, file_entry: dict[str, Any],
                 companions: dict[str, dict[str, Any]] | None = None) -> bytes:
        return sidecar.encode(sidecar.build_sidecar(
            source=asset.source.name, media_type=asset.media_type, media_id=asset.media_id,
            licenses=licenses, details=details, file=file_entry, synced_at=utcnow(), companions=companions))

    def _adopt(self, asset: AssetWork, destination: Destination, key: str, best: Item, licenses: list[Item],
               stat: StoredObject | None) -> bool:
        """An object already at ``key`` with its sidecar naming this license (a crash after the upload): take it."""
        if stat is None or not stat.sha256:
            return False
        document = sidecar.decode(destination.get_sidecar(key))
        if document is None or document.get("media_id") != asset.media_id:
            return False
        listed = {entry.get("id") for entry in document.get("licenses") or []}
        file_entry = document.get("file") or {}
        if best.license_id not in listed or stat.sha256 != file_entry.get("sha256"):
            return False
        if not {i.license_id for i in licenses} <= listed:
            document["licenses"] = [sidecar.license_entry(i) for i in licenses]
            destination.put_sidecar(key, sidecar.encode(document))
        self.store.record_stored(source=asset.source.name, media_type=asset.media_type, media_id=asset.media_id,
                                 destination=destination.name, key=key, sha256=stat.sha256, size_bytes=stat.bytes,
                                 size=best.size, license_ids=[i.license_id for i in licenses])
        log.info("adopted", destination=destination.name, key=key)
        return True

    def _update_sidecars(self, asset: AssetWork, licenses: list[Item], details: dict[str, Any] | None,
                         stored: dict[str, Any], destinations: Sequence[Destination]) -> str | None:
        """A new license of media already stored (no larger file): list it in the sidecars."""
        key = None
        for destination in destinations:
            row = stored[destination.name]
            key = row.key
            current = sidecar.decode(destination.get_sidecar(row.key)) or {}
            have = {entry.get("id") for entry in current.get("licenses") or []}
            wanted = {i.license_id for i in licenses}
            if wanted <= have:
                continue
            ext = row.key.rsplit(".", 1)[-1] if "." in row.key else None
            file_entry = current.get("file") or {"key": row.key, "bytes": row.bytes, "sha256": row.sha256,
                                                 "content_type": content_type_for(ext)}
            if details is None and current:
                current["licenses"] = [sidecar.license_entry(i) for i in licenses]
                destination.put_sidecar(row.key, sidecar.encode(current))  # keep what it said about the media
            else:
                destination.put_sidecar(row.key, self._sidecar(asset, licenses, details, file_entry,
                                                               sidecar.companions_of(current)))
            self.store.record_stored(source=asset.source.name, media_type=asset.media_type, media_id=asset.media_id,
                                     destination=destination.name, key=row.key, sha256=row.sha256,
                                     size_bytes=row.bytes, size=row.size, license_ids=sorted(wanted))
        return key

    # --- re-licensing (spends money) -------------------------------------------------------------

    def _acquire(self, asset: AssetWork) -> tuple[Item, Opener | None]:
        """A new license for media that cannot be re-downloaded: reconcile an earlier call, or buy one.

        The intent is committed before the call; while one is open the media is never licensed
        again (a crash, a timeout or a 5xx leaves it open and the history is asked instead).
        """
        source = asset.source
        original = max(asset.items, key=lambda i: (source.size_rank(asset.media_type, i.size), i.licensed_at))
        intent = self.store.open_intent(source.name, asset.media_type, asset.media_id)
        if intent is not None:
            return self._reconcile(asset, intent), None
        policy = source.relicense_policy()
        assert policy is not None
        self._reserve_license(source, policy)
        intent = self.store.create_intent(original, policy.subscription_id)
        if intent is None or intent.id is None:
            raise ItemDeferred("another process is licensing this media right now")
        try:
            answer = source.relicense(_as_record(original))
        except OutcomeUnknown as unknown:
            if not source.can_reconcile:
                self.store.resolve_intent(intent.id, INTENT_ABANDONED, str(unknown))
                raise ItemFailed(f"{unknown}; {source.kind} keeps no purchase history to check it against, so it "
                                 f"is not bought again automatically: check the account, then `syncd retry "
                                 f"{original.license_id}`", final=True) from None
            self.store.resolve_intent(intent.id, INTENT_UNKNOWN, str(unknown))
            raise ItemDeferred(f"{unknown}; the license history is checked before licensing it again") from None
        except (ItemFailed, ItemSkipped, Fatal) as refused:
            self.store.resolve_intent(intent.id, INTENT_FAILED, str(refused))
            raise
        log.info("relicensed", source=source.name, media_type=asset.media_type, media_id=asset.media_id,
                 replaces=original.license_id, license_id=answer.license_id, subscription=policy.subscription_id)
        if answer.license_id is None:
            return self._reconcile(asset, intent), None
        # The link is kept (it lasts 8 hours): media without redownload can only be fetched through it.
        record = LicenseRecord(
            source=source.name, media_type=asset.media_type, license_id=answer.license_id, media_id=asset.media_id,
            licensed_at=utcnow(), license=original.license, size=original.size, format=original.format,
            subscription_id=policy.subscription_id, username=original.username, is_downloadable=True,
            record={"relicensed_from": original.license_id, **source.purchase_record(answer)})
        bought = self.store.link_relicensed(intent.id, record, original.license_id)
        url = answer.url
        return bought, ((lambda headers: source.open_url(url, record.license_id, headers)) if url else None)

    def _bought_link(self, bought: Item, asset: AssetWork) -> Opener:
        """The download of a license syncd bought earlier for media without redownload.

        When that no longer works before the file was stored (an expired link), the item fails
        for good: syncd never buys the same media twice on its own.
        """
        kept = json.loads(bought.record or "{}")
        record = _as_record(bought)
        if asset.source.open_purchased(record, kept) is not None:
            return lambda headers: asset.source.open_purchased(record, kept, headers)  # type: ignore[return-value]
        raise ItemFailed(f"syncd licensed this media again as {bought.license_id}, but its download link expired "
                         "before the file was stored; download it from the account (syncd does not buy it twice)",
                         final=True)

    def _reserve_license(self, source: Source, policy: Any) -> None:
        """Count one licensing call against the per-pass budget and the subscription's allotment."""
        with self._lock:
            used = self._relicensed.get(source.name, 0)
            if used >= policy.budget:
                raise ItemSkipped(f"the purchase budget of this pass is reached ({policy.budget}); "
                                  "a later pass picks it up")
            if source.name not in self._allotment:
                self._allotment[source.name] = source.allotment()
            left = self._allotment[source.name]
            if left is not None and left <= 0:
                raise ItemSkipped(f"subscription {policy.subscription_id} has no licenses left; "
                                  "nothing was licensed (picked up once the allotment renews)")
            self._relicensed[source.name] = used + 1
            if left is not None:
                self._allotment[source.name] = left - 1

    def _link_discovered_purchase(self, asset: AssetWork, licenses: list[Item]) -> None:
        """Discovery may have found the license an unanswered licensing call created: link it."""
        intent = self.store.open_intent(asset.source.name, asset.media_type, asset.media_id)
        if intent is None or intent.id is None:
            return
        since = intent.created_at - timedelta(minutes=5)
        for item in licenses:
            if item.license_id != intent.license_id and not item.relicensed_from and item.licensed_at >= since:
                linked = self.store.link_relicensed(intent.id, _as_record(item), intent.license_id)
                item.relicensed_from = linked.relicensed_from
                log.info("relicense_reconciled", media_id=asset.media_id, license_id=item.license_id)
                return

    def _reconcile(self, asset: AssetWork, intent: Any) -> Item:
        """Find the license an earlier call created (the history may show it late)."""
        source = asset.source
        known = {i.license_id for i in self.store.licenses_of_media(source.name, asset.media_type, asset.media_id)}
        since = intent.created_at - timedelta(minutes=5)  # the upstream's clock may differ a little
        for record in source.licenses_of_media(asset.media_type, asset.media_id):
            if record.license_id not in known and to_utc_naive(record.licensed_at) >= since:
                log.info("relicense_reconciled", media_id=asset.media_id, license_id=record.license_id)
                return self.store.link_relicensed(intent.id, record, intent.license_id)
        waited = utcnow() - intent.created_at
        if not source.can_reconcile:
            self.store.resolve_intent(intent.id, INTENT_ABANDONED, "the source keeps no history to check")
            raise ItemFailed(f"a purchase of {intent.created_at:%Y-%m-%d %H:%M}Z had no clear answer and "
                             f"{source.kind} keeps no purchase history to check it against; check the account, "
                             f"then `syncd retry {intent.license_id}` buys it again", final=True)
        if waited < RECONCILE_PATIENCE:
            raise ItemDeferred(f"a licensing call of {intent.created_at:%Y-%m-%d %H:%M}Z had no clear answer and "
                               "its license is not in the history yet; it is not licensed again meanwhile")
        self.store.resolve_intent(intent.id, INTENT_ABANDONED, "never appeared in the license history")
        raise ItemFailed(f"a licensing call of {intent.created_at:%Y-%m-%d %H:%M}Z had no clear answer and no new "
                         f"license appeared in {waited.total_seconds() / 3600:.0f}h; check the account, then "
                         f"`syncd retry {intent.license_id}` licenses it again", final=True)

    # --- downloading ----------------------------------------------------------------------------

    def _download(self, path: Path, reopen: Opener, expected: int | None, label: str,
                  first: Opener | None = None) -> DownloadedFile:
        """Fetch into ``path`` and verify; a broken transfer resumes, an expired link is replaced.

        ``first`` opens a URL already in hand (a licensing call's); later tries ``reopen`` with a
        new one. A transfer cut short continues with an HTTP ``Range`` request where the server
        offered ranges (``Accept-Ranges: bytes``), so a multi-GB video is not fetched twice.
        ``expected`` is the length the metadata announced, if any (catches silent truncation).
        """
        if expected is not None:
            free = shutil.disk_usage(path.parent).free
            if expected > free:
                raise _no_room(path, expected, free)
        partial = _Partial()
        last: ItemFailed | None = None
        for attempt in range(DOWNLOAD_TRIES):
            if attempt:
                time.sleep(min(0.5 * 2 ** attempt, 5.0))
            try:
                return self._download_once(first if (attempt == 0 and first is not None) else reopen,
                                           expected, path, partial)
            except (IntegrityError, DownloadRefused, TransientError) as error:
                last = error
                log.warning("download_retry", file=label, error=str(error), attempt=attempt + 1,
                            resume_from=partial.received if partial.resumable else 0)
        assert last is not None
        raise last

    def _download_once(self, opener: Opener, expected: int | None, path: Path, partial: "_Partial") -> DownloadedFile:
        resume = partial.resumable and 0 < partial.received
        headers = {"Range": f"bytes={partial.received}-"} if resume else {}
        with opener(headers) as response:
            if not (resume and response.status_code == 206 and _range_start(response) == partial.received):
                partial.restart(response, expected)
            try:
                with open(path, "ab" if partial.received else "wb") as out:
                    for chunk in response.iter_raw(CHUNK):
                        partial.add(chunk)
                        out.write(chunk)
                        if partial.total is not None and partial.received > partial.total:
                            partial.resumable = False
                            raise IntegrityError(f"download is longer than the announced {partial.total} bytes")
            except httpx.HTTPError as error:
                raise IntegrityError(f"download broke off after {partial.received} bytes: {error!r}") from None
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise _no_room(path, partial.total, shutil.disk_usage(path.parent).free) from None
                raise
        if partial.total is not None and partial.received != partial.total:
            raise IntegrityError(f"download truncated: {partial.received} of {partial.total} bytes")
        if partial.received == 0:
            raise IntegrityError("download is empty")
        ext = sniff(partial.head) or extension_for(partial.content_type)
        return DownloadedFile(bytes=partial.received, sha256=partial.digest.hexdigest(),
                              content_type=_plain_type(partial.content_type, ext), ext=ext)


def _no_room(path: Path, size: int | None, free: int) -> ItemFailed:
    """The spool's disk is too full for this download: say where it is and how to move it."""
    spool = path.parent.parent
    what = f"the file is {human_bytes(size)} and " if size else ""
    return ItemFailed(
        f"no room to stage the download in {spool}: {what}{human_bytes(free)} is free there; point TMPDIR at a "
        "disk with room for [sync] concurrency times the largest file (systemd: Environment=TMPDIR=...; "
        "Kubernetes: the emptyDir's sizeLimit); the item will be retried on a later pass")


@dataclass(frozen=True)
class _Companion:
    """A file stored next to an asset and listed in its sidecar under the media type's key."""

    name: str  # e.g. "shorts_loops_stems"
    path: Path  # the verified download
    entry: dict[str, Any]  # key, bytes, sha256, content_type


@dataclass
class _Partial:
    """A download in progress: what arrived so far, its running hash, and whether it can resume."""

    received: int = 0
    total: int | None = None
    head: bytes = b""
    content_type: str | None = None
    resumable: bool = False
    digest: Any = field(default_factory=hashlib.sha256)

    def restart(self, response: httpx.Response, announced: int | None) -> None:
        """A full answer (200): start over from byte 0."""
        declared = _content_length(response)
        self.received, self.head, self.digest = 0, b"", hashlib.sha256()
        self.total = declared if declared is not None else announced
        self.content_type = response.headers.get("content-type")
        # Only a length-checked file can resume safely: without one, a short body looks complete.
        self.resumable = response.headers.get("accept-ranges", "").lower() == "bytes" and self.total is not None

    def add(self, chunk: bytes) -> None:
        if len(self.head) < 64:
            self.head += chunk[: 64 - len(self.head)]
        self.digest.update(chunk)
        self.received += len(chunk)


def _range_start(response: httpx.Response) -> int | None:
    """The first byte of a 206 answer (``Content-Range: bytes START-END/TOTAL``)."""
    value = response.headers.get("content-range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _content_length(response: httpx.Response) -> int | None:
    if response.headers.get("content-encoding", "identity") != "identity":
        return None
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _plain_type(content_type: str | None, ext: str | None) -> str | None:
    """The response's type when it is specific; the format's type otherwise."""
    plain = (content_type or "").split(";")[0].strip().lower()
    if plain and plain not in ("application/octet-stream", "binary/octet-stream"):
        return plain
    return content_type_for(ext) if ext else None


def _skip_reason(source: Source, item: Item | LicenseRecord) -> str | None:
    if not source.can_redownload(item.media_type):
        return source.unavailable_reason(item.media_type)
    if item.is_downloadable is False:
        return "the license is not re-downloadable (is_downloadable: false) and re-licensing is off"
    return None


def _as_record(item: Item) -> LicenseRecord:
    return LicenseRecord(source=item.source, media_type=item.media_type, license_id=item.license_id,
                         media_id=item.media_id, licensed_at=item.licensed_at, license=item.license, size=item.size,
                         format=item.format, subscription_id=item.subscription_id, username=item.username,
                         is_downloadable=item.is_downloadable)


def _chunks(work: list[AssetWork], size: int) -> Iterator[list[AssetWork]]:
    for start in range(0, len(work), size):
        yield work[start : start + size]
