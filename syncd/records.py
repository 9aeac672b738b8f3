"""The records that flow between a source, the engine and the state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class LicenseRecord:
    """One license from a source's history, as discovery records it."""

    source: str
    media_type: str
    license_id: str
    media_id: str
    licensed_at: datetime
    license: str | None = None
    size: str | None = None
    format: str | None = None
    subscription_id: str | None = None
    username: str | None = None
    is_downloadable: bool | None = None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryPage:
    """One page of a license history, newest first."""

    records: list[LicenseRecord]
    page: int
    total_count: int | None


@dataclass(frozen=True)
class DownloadedFile:
    """A downloaded, verified file in local temporary storage."""

    bytes: int
    sha256: str
    content_type: str | None
    ext: str | None
