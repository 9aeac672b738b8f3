"""The state database: items and their lifecycle, stored assets, frontiers, runs and the lock.

Every write is its own short transaction, so a crash at any point loses at most the item in
flight, never a recorded one. The schema is versioned with Alembic migrations (the same history
on SQLite and PostgreSQL); opening a store upgrades it to the current version.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, inspect, or_, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)
from sqlmodel import Session, col, delete, select

from syncd.errors import ConfigError, LockHeld
from syncd.models import (
    DISCOVERED,
    FAILED,
    IN_PROGRESS,
    INTENT_DONE,
    INTENT_OPEN,
    SKIPPED,
    SYNCED,
    BackfillCursor,
    DestinationInventory,
    Frontier,
    Item,
    LicensingIntent,
    Lock,
    Run,
    SharedRateLimit,
    StoredAsset,
    Worker,
)
from syncd.records import LicenseRecord
from syncd.redact import redact

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_REVISION = "0001"  # the newest migration; tests/test_state.py holds it to Alembic's head
LOCK_NAME = "state"
LOCK_TTL = timedelta(seconds=60)
HEARTBEAT_SECONDS = 15.0
_LIVE_TOKENS: set[str] = set()  # lock tokens held by this process


def utcnow() -> datetime:
    """Naive UTC now: what every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(moment: datetime) -> datetime:
    """Any datetime → naive UTC (aware ones are converted, naive ones are taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StateStore:
    """Access to one state database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # SQLite allows one writer; serialising our own threads avoids busy errors on upgrade.
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self.migrate()

    # --- plumbing --------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (a no-op when current).

        Several processes may start at once (a leader and its workers): on PostgreSQL an
        advisory lock lets one migrate while the others wait; on SQLite the loser of the race
        sees the winner's tables and simply re-reads the revision.
        """
        for attempt in range(20):
            if self._current_revision() == SCHEMA_REVISION:
                return  # the common case, without loading Alembic (a tenth of a second per start)
            try:
                self._upgrade()
                return
            except (OperationalError, IntegrityError, ProgrammingError) as error:
                if attempt == 19:
                    raise ConfigError(f"cannot migrate the state database: {error.orig}", key="state.url") from None
                time.sleep(0.1 + 0.05 * attempt)

    def _upgrade(self) -> None:
        from alembic import command as alembic_command
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(7217731)"))
            config.attributes["connection"] = connection
            alembic_command.upgrade(config, "head")

    def schema_version(self) -> str | None:
        """The Alembic revision the database is at."""
        return self._current_revision()

    def _current_revision(self) -> str | None:
        try:
            with self.engine.connect() as connection:
                if not inspect(connection).has_table("alembic_version"):
                    return None
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError as error:
            raise ConfigError(f"cannot open the state database: {error.orig}", key="state.url") from None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error."""
        if self._write_lock is not None:
            self._write_lock.acquire()
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                with session.begin():
                    yield session
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

    def read(self) -> Session:
        """A read-only session (use as a context manager)."""
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    # --- discovery ---------------------------------------------------------------------------

    def record_discovered(self, licenses: Sequence[LicenseRecord]) -> int:
        """Insert the licenses not yet known; returns how many were new. One transaction."""
        if not licenses:
            return 0
        source = licenses[0].source
        ids = [entry.license_id for entry in licenses]
        now = utcnow()
        with self.write() as session:
            known = set(
                session.exec(
                    select(Item.license_id).where(Item.source == source, col(Item.license_id).in_(ids))
                ).all()
            )
            fresh = {entry.license_id: entry for entry in licenses if entry.license_id not in known}
            for entry in fresh.values():
                session.add(
                    Item(
                        source=entry.source,
                        media_type=entry.media_type,
                        license_id=entry.license_id,
                        media_id=entry.media_id,
                        licensed_at=to_utc_naive(entry.licensed_at),
                        license=entry.license,
                        size=entry.size,
                        format=entry.format,
                        subscription_id=entry.subscription_id,
                        username=entry.username,
                        is_downloadable=entry.is_downloadable,
                        record=json.dumps(entry.record, sort_keys=True),
                        discovered_at=now,
                        updated_at=now,
                    )
                )
        return len(fresh)

    def known_license_ids(self, source: str, license_ids: Iterable[str]) -> set[str]:
        """Which of these license ids already have a row."""
        ids = list(license_ids)
        with self.read() as session:
            return set(
                session.exec(
                    select(Item.license_id).where(Item.source == source, col(Item.license_id).in_(ids))
                ).all()
            )

    def item_ids(self, source: str, license_ids: Sequence[str]) -> list[int]:
        """Row ids of these licenses."""
        with self.read() as session:
            return [i for i in session.exec(select(Item.id).where(
                Item.source == source, col(Item.license_id).in_(list(license_ids)))).all() if i is not None]

    def frontier(self, source: str, media_type: str) -> Frontier | None:
        """The newest license of the last complete discovery, or None before the first."""
        with self.read() as session:
            return session.get(Frontier, (source, media_type))

    def set_frontier(self, source: str, media_type: str, license_id: str, licensed_at: datetime) -> None:
        """Move the frontier; called only when a discovery walked back to its predecessor."""
        with self.write() as session:
            row = session.get(Frontier, (source, media_type))
            if row is None:
                row = Frontier(source=source, media_type=media_type, license_id=license_id,
                               licensed_at=to_utc_naive(licensed_at), updated_at=utcnow())
            else:
                row.license_id = license_id
                row.licensed_at = to_utc_naive(licensed_at)
                row.updated_at = utcnow()
            session.add(row)

    def backfill_cursor(self, source: str, media_type: str, window: str) -> BackfillCursor | None:
        """Progress of a backfill over ``window``."""
        with self.read() as session:
            return session.get(BackfillCursor, (source, media_type, window))

    def save_backfill_cursor(
        self, source: str, media_type: str, window: str, oldest: datetime | None, completed: bool
    ) -> None:
        """Record how far back a backfill has walked (or that it finished)."""
        with self.write() as session:
            row = session.get(BackfillCursor, (source, media_type, window)) or BackfillCursor(
                source=source, media_type=media_type, window=window, updated_at=utcnow()
            )
            if oldest is not None:
                row.oldest_licensed_at = to_utc_naive(oldest)
            row.completed_at = utcnow() if completed else None
            row.updated_at = utcnow()
            session.add(row)

    # --- the queue ------------------------------------------------------------------------------

    def due_items(self, sources: Sequence[str], *, respect_backoff: bool, now: datetime | None = None,
                  untouched_since: datetime | None = None, limit: int | None = None,
                  include_skipped: bool = True) -> list[Item]:
        """Items to work on: in progress (and due), or skipped (reconsidered every pass), not leased.

        ``untouched_since`` leaves out items already handled since then (by this pass or a worker).
        ``include_skipped=False`` leaves skipped items to the passes of the discovering process.
        """
        now = now or utcnow()
        queued = col(Item.status).in_(IN_PROGRESS)
        if respect_backoff:
            queued = queued & or_(col(Item.next_attempt_at).is_(None), col(Item.next_attempt_at) <= now)
        wanted = or_(queued, Item.status == SKIPPED) if include_skipped else queued
        free = or_(col(Item.lease_owner).is_(None), col(Item.lease_expires_at) < now)
        query = (
            select(Item)
            .where(col(Item.source).in_(list(sources)), wanted, free)
            .order_by(col(Item.licensed_at).desc(), col(Item.id).desc())
        )
        if untouched_since is not None:
            query = query.where(col(Item.updated_at) < untouched_since)
        if limit is not None:
            query = query.limit(limit)
        with self.read() as session:
            return list(session.exec(query).all())

    def leased_by_others(self, sources: Sequence[str], owner: str) -> int:
        """Items other processes hold a live lease on (a leader waits for them to end its pass)."""
        with self.read() as session:
            return session.exec(select(func.count()).select_from(Item).where(
                col(Item.source).in_(list(sources)), col(Item.lease_owner).is_not(None),
                Item.lease_owner != owner, col(Item.lease_expires_at) >= utcnow())).one()

    def unfinished_since(self, sources: Sequence[str], since: datetime, exclude: set[int]) -> int:
        """Items another process worked on since ``since`` and did not sync (failed or waiting)."""
        with self.read() as session:
            ids = session.exec(select(Item.id).where(
                col(Item.source).in_(list(sources)), col(Item.updated_at) >= since,
                col(Item.status).in_([*IN_PROGRESS, FAILED]))).all()
        return len([i for i in ids if i not in exclude])

    @property
    def shared(self) -> bool:
        """Whether other processes (workers) may work on this state: PostgreSQL."""
        return self.engine.dialect.name == "postgresql"

    def licenses_of_media(self, source: str, media_type: str, media_id: str) -> list[Item]:
        """Every known license of one media item, newest first."""
        with self.read() as session:
            return list(
                session.exec(
                    select(Item)
                    .where(Item.source == source, Item.media_type == media_type, Item.media_id == media_id)
                    .order_by(col(Item.licensed_at).desc())
                ).all()
            )

    def claim(self, item_ids: Sequence[int], owner: str, ttl: timedelta, planned_at: datetime | None = None) -> bool:
        """Take a lease on all of ``item_ids`` or none (another process holds or has handled one).

        ``planned_at``: the items must not have changed since (another worker may have synced
        or failed them in between; then they are not this process's to take).
        """
        now = utcnow()
        with self.write() as session:
            query = (
                update(Item)
                .where(col(Item.id).in_(list(item_ids)))
                .where(col(Item.status).not_in([SYNCED, FAILED]))
                .where(or_(col(Item.lease_owner).is_(None), col(Item.lease_expires_at) < now, Item.lease_owner == owner))
            )
            if planned_at is not None:
                query = query.where(col(Item.updated_at) <= planned_at)
            result = session.execute(
                query
                .values(lease_owner=owner, lease_expires_at=now + ttl, claims=Item.claims + 1)
            )
            if result.rowcount != len(item_ids):
                session.rollback()
                return False
        return True

    def renew_leases(self, owner: str, ttl: timedelta) -> None:
        """Extend every lease ``owner`` holds (a live worker keeps its items)."""
        with self.write() as session:
            session.execute(update(Item).where(Item.lease_owner == owner).values(lease_expires_at=utcnow() + ttl))

    def release_dead_leases(self) -> int:
        """Free leases held by processes of this host that no longer exist (killed with SIGKILL)."""
        host = socket.gethostname()
        freed = 0
        with self.write() as session:
            owners = session.exec(select(Item.lease_owner).where(col(Item.lease_owner).is_not(None)).distinct()).all()
            for owner in owners:
                owner_host, _, rest = (owner or "").partition(":")
                pid = rest.partition(":")[0]
                if owner_host == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                    result = session.execute(update(Item).where(Item.lease_owner == owner)
                                             .values(lease_owner=None, lease_expires_at=None))
                    freed += result.rowcount
        return freed

    def release(self, item_ids: Sequence[int], owner: str) -> None:
        """Give leases back without changing the items."""
        with self.write() as session:
            session.execute(
                update(Item)
                .where(col(Item.id).in_(list(item_ids)), Item.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )

    def set_status(self, item_ids: Sequence[int], status: str, reason: str | None = None) -> None:
        """Move items to ``status`` and release their leases, in one transaction."""
        reason = redact(reason) if reason else reason
        values: dict[str, Any] = dict(status=status, reason=reason, updated_at=utcnow(),
                                      lease_owner=None, lease_expires_at=None)
        if status == SYNCED:
            values.update(next_attempt_at=None)
        with self.write() as session:
            session.execute(update(Item).where(col(Item.id).in_(list(item_ids))).values(**values))

    def defer(self, item_ids: Sequence[int], reason: str, wait: timedelta) -> None:
        """Leave items queued with a reason, not before ``wait`` (no attempt counted)."""
        reason = redact(reason)
        with self.write() as session:
            session.execute(update(Item).where(col(Item.id).in_(list(item_ids))).values(
                reason=reason[:2000], next_attempt_at=utcnow() + wait, updated_at=utcnow(),
                lease_owner=None, lease_expires_at=None))

    def record_failure(self, item_ids: Sequence[int], reason: str, max_attempts: int, final: bool = False) -> bool:
        """Count a failed attempt; returns True when the items are now ``failed`` for good."""
        reason = redact(reason)
        now = utcnow()
        exhausted = False
        with self.write() as session:
            for item in session.exec(select(Item).where(col(Item.id).in_(list(item_ids)))).all():
                item.attempts = max(item.attempts + 1, max_attempts if final else 0)
                item.reason = reason[:2000]
                item.updated_at = now
                item.lease_owner = None
                item.lease_expires_at = None
                if item.attempts >= max_attempts:
                    item.status = FAILED
                    item.next_attempt_at = None
                    exhausted = True
                else:
                    item.status = DISCOVERED if item.status in (SKIPPED, FAILED) else item.status
                    item.next_attempt_at = now + retry_backoff(item.attempts)
                session.add(item)
        return exhausted

    def retry(self, license_ids: Sequence[str] | None) -> tuple[int, list[str]]:
        """Re-queue failed or skipped items (all, or the given license ids); returns (count, unknown ids)."""
        with self.write() as session:
            query = update(Item).where(col(Item.status).in_([FAILED, SKIPPED]))
            unknown: list[str] = []
            if license_ids is not None:
                existing = set(session.exec(select(Item.license_id).where(col(Item.license_id).in_(list(license_ids)))).all())
                unknown = [license_id for license_id in license_ids if license_id not in existing]
                query = query.where(col(Item.license_id).in_(list(license_ids)))
            result = session.execute(
                query.values(status=DISCOVERED, attempts=0, next_attempt_at=None, reason=None, updated_at=utcnow())
            )
            return result.rowcount, unknown

    # --- workers and the shared rate limit ------------------------------------------------------

    def register_worker(self, owner: str) -> None:
        """A worker starts."""
        now = utcnow()
        with self.write() as session:
            session.merge(Worker(owner=owner, host=socket.gethostname(), pid=os.getpid(), started_at=now,
                                 heartbeat_at=now, items_in_hand=0))

    def worker_heartbeat(self, owner: str, stopped: bool = False) -> None:
        """A worker is alive (and how many items it holds), or has stopped."""
        with self.write() as session:
            in_hand = session.exec(select(func.count()).select_from(Item).where(Item.lease_owner == owner)).one()
            session.execute(update(Worker).where(Worker.owner == owner).values(
                heartbeat_at=utcnow(), items_in_hand=in_hand, stopped_at=utcnow() if stopped else None))

    def workers(self) -> list[Worker]:
        """Workers known to the state, most recent first."""
        with self.read() as session:
            return list(session.exec(select(Worker).order_by(col(Worker.heartbeat_at).desc()).limit(50)).all())

    def expired_leases(self) -> int:
        """Items whose holder stopped renewing its lease (a dead worker's; taken over by others)."""
        with self.read() as session:
            return session.exec(select(func.count()).select_from(Item).where(
                col(Item.lease_owner).is_not(None), col(Item.lease_expires_at) < utcnow())).one()

    def release_owner(self, owner: str) -> None:
        """Give back every lease ``owner`` holds."""
        with self.write() as session:
            session.execute(update(Item).where(Item.lease_owner == owner).values(lease_owner=None, lease_expires_at=None))

    def shared_pause(self, key: str) -> float:
        """Until when (epoch seconds) every process must wait before calling the upstream."""
        with self.read() as session:
            row = session.get(SharedRateLimit, key)
            return row.paused_until if row else 0.0

    def share_pause(self, key: str, until: float) -> None:
        """Tell every process to wait until ``until`` (keeps the later of two pauses)."""
        for _ in range(3):  # two processes may create the row at once: the loser updates it
            try:
                with self.write() as session:
                    moved = session.execute(update(SharedRateLimit).where(
                        SharedRateLimit.key == key, SharedRateLimit.paused_until < until,
                    ).values(paused_until=until, updated_at=utcnow())).rowcount
                    if not moved and session.get(SharedRateLimit, key) is None:
                        session.add(SharedRateLimit(key=key, paused_until=until, updated_at=utcnow()))
                return
            except IntegrityError:
                continue

    # --- licensing intents ----------------------------------------------------------------------

    def open_intent(self, source: str, media_type: str, media_id: str) -> LicensingIntent | None:
        """The licensing call for this media whose outcome is not known yet, if any."""
        with self.read() as session:
            return session.exec(select(LicensingIntent).where(
                LicensingIntent.source == source, LicensingIntent.media_type == media_type,
                LicensingIntent.media_id == media_id, col(LicensingIntent.status).in_(INTENT_OPEN))).first()

    def create_intent(self, item: Item, subscription_id: str | None) -> LicensingIntent | None:
        """Record, before the call, that syncd is about to license this media; None if one is open."""
        intent = LicensingIntent(source=item.source, media_type=item.media_type, media_id=item.media_id,
                                 license_id=item.license_id, subscription_id=subscription_id, size=item.size,
                                 created_at=utcnow())
        try:
            with self.write() as session:
                session.add(intent)
        except IntegrityError:
            return None
        return intent

    def resolve_intent(self, intent_id: int, status: str, message: str | None = None) -> None:
        """The licensing call's outcome became known (or is now unknown)."""
        message = redact(message) if message else message
        with self.write() as session:
            session.execute(update(LicensingIntent).where(LicensingIntent.id == intent_id).values(
                status=status, message=message, resolved_at=utcnow() if status not in INTENT_OPEN else None))

    def link_relicensed(self, intent_id: int, record: LicenseRecord, original_license_id: str) -> Item:
        """The license syncd bought: recorded as replacing the original, never synced as new."""
        now = utcnow()
        with self.write() as session:
            item = session.exec(select(Item).where(Item.source == record.source,
                                                   Item.license_id == record.license_id)).first()
            if item is None:
                item = Item(source=record.source, media_type=record.media_type, license_id=record.license_id,
                            media_id=record.media_id, licensed_at=to_utc_naive(record.licensed_at),
                            license=record.license, size=record.size, format=record.format,
                            subscription_id=record.subscription_id, username=record.username,
                            is_downloadable=record.is_downloadable, record=json.dumps(record.record, sort_keys=True),
                            discovered_at=now, updated_at=now)
            item.relicensed_from = original_license_id
            session.add(item)
            session.execute(update(LicensingIntent).where(LicensingIntent.id == intent_id).values(
                status=INTENT_DONE, new_license_id=record.license_id, resolved_at=now))
            session.flush()
            return item

    def intents(self, status: str | None = None) -> list[LicensingIntent]:
        """Licensing intents (for status and tests)."""
        with self.read() as session:
            query = select(LicensingIntent).order_by(col(LicensingIntent.id))
            if status is not None:
                query = query.where(LicensingIntent.status == status)
            return list(session.exec(query).all())

    # --- stored assets -------------------------------------------------------------------------

    def stored_by_destination(self, source: str, media_type: str, media_id: str) -> dict[str, StoredAsset]:
        """Where this asset is recorded as stored, by destination name (one query)."""
        with self.read() as session:
            rows = session.exec(select(StoredAsset).where(
                StoredAsset.source == source, StoredAsset.media_type == media_type, StoredAsset.media_id == media_id,
            )).all()
        return {row.destination: row for row in rows}

    def record_stored(self, **stored: Any) -> None:
        """Upsert the row saying a destination holds this asset with these licenses."""
        with self.write() as session:
            self._upsert_stored(session, **stored)

    def complete(self, item_ids: Sequence[int], stored: Sequence[dict[str, Any]],
                 media: tuple[str, str, str]) -> None:
        """The items of one asset (``media``: source, media type, media id) are synced: record
        where it is stored and mark them, in one transaction of three statements or so (this
        runs once per asset, on the hot path)."""
        source, media_type, media_id = media
        with self.write() as session:
            for row in stored:
                self._upsert_stored(session, **row)
            session.execute(update(LicensingIntent).where(  # the asset is here: no licensing call is pending
                LicensingIntent.source == source, LicensingIntent.media_type == media_type,
                LicensingIntent.media_id == media_id, col(LicensingIntent.status).in_(INTENT_OPEN),
            ).values(status=INTENT_DONE, resolved_at=utcnow(), message="the asset was stored"))
            session.execute(update(Item).where(col(Item.id).in_(list(item_ids))).values(
                status=SYNCED, reason=None, next_attempt_at=None, updated_at=utcnow(),
                lease_owner=None, lease_expires_at=None))

    @staticmethod
    def _upsert_stored(
        session: Session, *, source: str, media_type: str, media_id: str, destination: str, key: str,
        sha256: str, size_bytes: int, size: str | None, license_ids: Sequence[str],
    ) -> None:
        """One statement: insert the asset's row at ``destination`` or update the one there."""
        statement = _insert(session, StoredAsset).values(
            source=source, media_type=media_type, media_id=media_id, destination=destination, key=key,
            sha256=sha256, bytes=size_bytes, size=size, license_ids=json.dumps(sorted(set(license_ids))),
            stored_at=utcnow())
        session.execute(statement.on_conflict_do_update(
            index_elements=["source", "media_type", "media_id", "destination"],
            set_={name: statement.excluded[name] for name in ("key", "sha256", "bytes", "size", "license_ids",
                                                              "stored_at")}))

    def inventory_complete(self, destination: str) -> bool:
        """Whether this state knows every syncd object at ``destination``."""
        with self.read() as session:
            return session.get(DestinationInventory, destination) is not None

    def has_stored(self, destination: str) -> bool:
        """Whether any asset is recorded at ``destination``."""
        with self.read() as session:
            return session.exec(select(StoredAsset.id).where(StoredAsset.destination == destination).limit(1)).first() is not None

    def mark_inventory_complete(self, destination: str) -> None:
        """Record that this state knows every syncd object at ``destination`` from now on."""
        with self.write() as session:  # every process may say so at once: the first one's row stays
            session.execute(_insert(session, DestinationInventory)
                            .values(destination=destination, complete_since=utcnow()).on_conflict_do_nothing())

    # --- runs and status -----------------------------------------------------------------------

    def start_run(self, command: str) -> int:
        """Log the start of a state-changing command."""
        with self.write() as session:
            run = Run(command=command, started_at=utcnow(), host=socket.gethostname(), pid=os.getpid())
            session.add(run)
            session.flush()
            assert run.id is not None
            return run.id

    def finish_run(self, run_id: int, outcome: str, exit_code: int, counts: dict[str, Any], message: str | None) -> None:
        """Log how a command ended."""
        message = redact(message) if message else message
        with self.write() as session:
            run = session.get(Run, run_id)
            if run is None:
                return
            run.finished_at = utcnow()
            run.outcome = outcome
            run.exit_code = exit_code
            run.counts = json.dumps(counts, sort_keys=True)
            run.message = message
            session.add(run)

    def status_counts(self) -> dict[str, int]:
        """Items per user-facing state: synced, queued, failed, skipped."""
        counts = {"synced": 0, "queued": 0, "failed": 0, "skipped": 0}
        with self.read() as session:
            for status, number in session.exec(select(Item.status, func.count()).group_by(Item.status)).all():
                counts["queued" if status in IN_PROGRESS else status] += number
        return counts

    def problem_items(self, limit: int = 50) -> list[Item]:
        """Failed, skipped, and queued-with-an-error items, most recently changed first."""
        with self.read() as session:
            return list(
                session.exec(
                    select(Item)
                    .where(or_(col(Item.status).in_([FAILED, SKIPPED]), col(Item.reason).is_not(None)))
                    .where(Item.status != SYNCED)
                    .order_by(col(Item.updated_at).desc())
                    .limit(limit)
                ).all()
            )

    def recent_runs(self, limit: int = 5) -> list[Run]:
        """The last runs, newest first."""
        with self.read() as session:
            return list(session.exec(select(Run).order_by(col(Run.id).desc()).limit(limit)).all())

    def frontiers(self) -> list[Frontier]:
        """All frontiers."""
        with self.read() as session:
            return list(session.exec(select(Frontier)).all())

    # --- the lock ------------------------------------------------------------------------------

    @contextmanager
    def lock(self, command: str) -> Iterator["LockLease"]:
        """Hold the state lock for the duration; raises ``LockHeld`` naming the holder."""
        lease = LockLease(self, command)
        lease.acquire()
        try:
            yield lease
        finally:
            lease.release()


def retry_backoff(attempts: int) -> timedelta:
    """Wait before the next attempt of an item: 1, 2, 4 … minutes, at most 6 hours."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 360))


class LockLease:
    """A lease row renewed by a heartbeat thread; a dead holder's lease is taken over.

    A holder on this host whose pid is gone (SIGKILL) is recovered at once; one on another
    host (a vanished pod) when its lease expires, ``LOCK_TTL`` after its last heartbeat.
    Works on any database and across containers sharing a state volume.
    """

    def __init__(self, store: StateStore, command: str) -> None:
        self.store = store
        self.command = command
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``LockHeld``."""
        now = utcnow()
        with self.store.write() as session:
            holder = session.get(Lock, LOCK_NAME)
            if holder is not None and not self._is_stale(holder, now):
                raise LockHeld(
                    f"another syncd run holds the lock on this state: pid {holder.pid} on host "
                    f"{holder.host} ({holder.command}), since {holder.acquired_at:%Y-%m-%d %H:%M:%S}Z; "
                    f"it is released when that run ends, or {int(LOCK_TTL.total_seconds())}s after "
                    "its holder stops renewing it"
                )
            if holder is not None:
                session.delete(holder)
                session.flush()
            session.add(Lock(name=LOCK_NAME, token=self.token, host=self.host, pid=self.pid,
                             command=self.command, acquired_at=now, heartbeat_at=now,
                             expires_at=now + LOCK_TTL))
        _LIVE_TOKENS.add(self.token)
        self._thread = threading.Thread(target=self._heartbeat, name="syncd-lock-heartbeat", daemon=True)
        self._thread.start()

    def _is_stale(self, holder: Lock, now: datetime) -> bool:
        if holder.expires_at < now:
            return True
        if holder.host != self.host:
            return False
        if holder.pid == self.pid:
            # Our own pid: a live lease of this process, or a previous incarnation that had our
            # pid (a restarted container's pid 1).
            return holder.token not in _LIVE_TOKENS
        return not _pid_alive(holder.pid)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                now = utcnow()
                with self.store.write() as session:
                    result = session.execute(
                        update(Lock)
                        .where(Lock.name == LOCK_NAME, Lock.token == self.token)
                        .values(heartbeat_at=now, expires_at=now + LOCK_TTL)
                    )
                    if result.rowcount == 0:
                        self.lost.set()
                        return
            except Exception:  # noqa: BLE001 - a missed heartbeat is retried; expiry is a minute away
                continue

    def release(self) -> None:
        """Stop the heartbeat and delete our lease row."""
        self._stop.set()
        _LIVE_TOKENS.discard(self.token)
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self.store.write() as session:
                session.execute(delete(Lock).where(Lock.name == LOCK_NAME, Lock.token == self.token))
        except Exception:  # noqa: BLE001 - the lease expires on its own
            pass


def _make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            _ensure_sqlite_dir(url)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise ConfigError(f"not a usable database URL ({error})", key="state.url") from None


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _insert(session: Session, model: Any) -> Any:
    """An INSERT with ``on_conflict_do_*`` (one statement, no check-then-insert race between processes)."""
    return (postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(model)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
