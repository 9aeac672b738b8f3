"""The state tables (schema version 1). Changes go through a new migration in ``migrations/``.

Times are stored as naive UTC datetimes on every backend (SQLite has no time zones).
"""

from __future__ import annotations

from pydantic import NaiveDatetime
from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

# Item lifecycle. discovered → fetched → stored → synced; failed / skipped park the item.
DISCOVERED, FETCHED, STORED, SYNCED, FAILED, SKIPPED = (
    "discovered",
    "fetched",
    "stored",
    "synced",
    "failed",
    "skipped",
)
IN_PROGRESS = (DISCOVERED, FETCHED, STORED)


class Item(SQLModel, table=True):
    """One license in a source's history and where it is in its lifecycle."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("source", "license_id", name="uq_items_source_license"),
        Index("ix_items_status", "status", "next_attempt_at"),
        Index("ix_items_media", "source", "media_type", "media_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    media_type: str
    license_id: str
    media_id: str
    status: str = DISCOVERED
    reason: str | None = None
    attempts: int = 0
    next_attempt_at: NaiveDatetime | None = None
    licensed_at: NaiveDatetime
    license: str | None = None
    size: str | None = None
    format: str | None = None
    subscription_id: str | None = None
    username: str | None = None
    is_downloadable: bool | None = None
    record: str = "{}"  # the history item as the API sent it (JSON)
    discovered_at: NaiveDatetime
    updated_at: NaiveDatetime
    lease_owner: str | None = None
    lease_expires_at: NaiveDatetime | None = None
    claims: int = 0  # times a worker took this item; above 1, an earlier try may have stored it
    relicensed_from: str | None = None  # set on a license syncd bought to replace this one


class StoredAsset(SQLModel, table=True):
    """One asset (a media item, all its licenses) as stored at one destination."""

    __tablename__ = "stored_assets"
    __table_args__ = (
        UniqueConstraint("source", "media_type", "media_id", "destination", name="uq_stored_asset"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    media_type: str
    media_id: str
    destination: str
    key: str
    sha256: str
    bytes: int
    size: str | None = None  # the licensed size of the stored file
    license_ids: str = "[]"  # JSON list of every license the sidecar lists
    stored_at: NaiveDatetime


# Licensing intent lifecycle: recorded before the call; resolved by its answer or by the history.
INTENT_PENDING, INTENT_UNKNOWN, INTENT_DONE, INTENT_FAILED, INTENT_ABANDONED = (
    "pending", "unknown", "done", "failed", "abandoned")
INTENT_OPEN = (INTENT_PENDING, INTENT_UNKNOWN)


class LicensingIntent(SQLModel, table=True):
    """A licensing call syncd is about to make or has made: money, so recorded before the call.

    While an intent is open (pending, or unknown after a crash or timeout) the media is never
    licensed again; a partial unique index makes that a database guarantee across workers.
    """

    __tablename__ = "licensing_intents"
    __table_args__ = (
        Index("uq_open_intent", "source", "media_type", "media_id", unique=True,
              sqlite_where=text("status IN ('pending', 'unknown')"),
              postgresql_where=text("status IN ('pending', 'unknown')")),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    media_type: str
    media_id: str
    license_id: str  # the license that could not be re-downloaded
    subscription_id: str | None = None
    size: str | None = None
    status: str = INTENT_PENDING
    message: str | None = None
    new_license_id: str | None = None
    created_at: NaiveDatetime
    resolved_at: NaiveDatetime | None = None


class Worker(SQLModel, table=True):
    """A `syncd worker` process: who, since when, alive when last heard of."""

    __tablename__ = "workers"

    owner: str = Field(primary_key=True)  # host:pid:random, also the owner of its item leases
    host: str
    pid: int
    started_at: NaiveDatetime
    heartbeat_at: NaiveDatetime
    items_in_hand: int = 0
    stopped_at: NaiveDatetime | None = None


class SharedRateLimit(SQLModel, table=True):
    """The upstream's rate limit as every process sees it: a pause one saw applies to all."""

    __tablename__ = "rate_limits"

    key: str = Field(primary_key=True)
    paused_until: float  # epoch seconds
    updated_at: NaiveDatetime


class DestinationInventory(SQLModel, table=True):
    """A destination whose every syncd object this state knows (it was empty, or rebuilt from it).

    Items never tried before are then stored without first asking the destination what it holds.
    """

    __tablename__ = "destination_inventory"

    destination: str = Field(primary_key=True)
    complete_since: NaiveDatetime


class Frontier(SQLModel, table=True):
    """Per source and media type: the newest license of the last complete discovery."""

    __tablename__ = "frontiers"

    source: str = Field(primary_key=True)
    media_type: str = Field(primary_key=True)
    license_id: str
    licensed_at: NaiveDatetime
    updated_at: NaiveDatetime


class BackfillCursor(SQLModel, table=True):
    """How far a backfill over one window has walked, so an interrupted one resumes."""

    __tablename__ = "backfill_cursors"

    source: str = Field(primary_key=True)
    media_type: str = Field(primary_key=True)
    window: str = Field(primary_key=True)
    oldest_licensed_at: NaiveDatetime | None = None
    completed_at: NaiveDatetime | None = None
    updated_at: NaiveDatetime


class Run(SQLModel, table=True):
    """One command that changed state: when, by whom, with what outcome."""

    __tablename__ = "runs"

    id: int | None = Field(default=None, primary_key=True)
    command: str
    started_at: NaiveDatetime
    finished_at: NaiveDatetime | None = None
    outcome: str = "running"
    exit_code: int | None = None
    counts: str = "{}"
    message: str | None = None
    host: str
    pid: int


class Lock(SQLModel, table=True):
    """A lease: who holds the state, renewed by a heartbeat, recoverable when it expires."""

    __tablename__ = "locks"

    name: str = Field(primary_key=True)
    token: str
    host: str
    pid: int
    command: str
    acquired_at: NaiveDatetime
    heartbeat_at: NaiveDatetime
    expires_at: NaiveDatetime
