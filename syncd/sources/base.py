"""The source interface: what an agency plug-in declares and yields.

A source pages its license history newest first (``history``), describes media in bulk
(``details``) and hands out a fresh download for a license (``open_download``). The engine
owns the stop rule, state and concurrency; a source owns only its API's shapes.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from syncd.records import HistoryPage, LicenseRecord


@dataclass(frozen=True)
class RelicensePolicy:
    """What the configuration allows a pass to spend."""

    budget: int  # licensing calls per pass
    subscription_id: str | None


@dataclass(frozen=True)
class Relicensed:
    """The answer to a licensing call: the new license (when the API names it) and its file."""

    license_id: str | None
    url: str | None
    details: dict[str, Any] | None = None  # source-specific facts worth keeping (e.g. a download id)


class Source(abc.ABC):
    """One configured account at one agency."""

    kind: ClassVar[str]
    history_is_ordered: ClassVar[bool] = True
    """Newest first with stable dates, so a frontier can end discovery early. False: walk it all."""
    can_reconcile: ClassVar[bool] = True
    """The history lists what a licensing call bought, so a lost answer can be found again."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    @abc.abstractmethod
    def media_types(self) -> list[str]:
        """The media types this source syncs (each has its own history and frontier)."""

    @abc.abstractmethod
    def history(
        self, media_type: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[HistoryPage]:
        """The license history of ``media_type``, newest first, one page at a time."""

    @abc.abstractmethod
    def details(self, media_type: str, media_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Metadata of many media at once, by media id (missing ids are simply absent)."""

    @abc.abstractmethod
    def open_download(self, license: LicenseRecord,
                      headers: dict[str, str] | None = None) -> AbstractContextManager[httpx.Response]:
        """A fresh, streaming download of the licensed file (links expire: ask just before use).

        ``headers`` go to the download request (a ``Range`` to resume); 200 and 206 are answers.

        Raises ``ItemSkipped`` when the license cannot be re-downloaded, ``DownloadRefused``
        when the URL was refused, ``TransientError`` on network trouble.
        """

    def can_redownload(self, media_type: str) -> bool:
        """Whether licenses of this media type can be fetched again without paying."""
        return True

    def unavailable_reason(self, media_type: str) -> str:
        """Why media of this type cannot be fetched under the current configuration (for status)."""
        return f"{media_type} media have no redownload endpoint and re-licensing is off"

    def can_relicense(self, media_type: str) -> bool:
        """Whether the configuration lets syncd license this media again when it cannot re-download."""
        return False

    def relicense_policy(self) -> RelicensePolicy | None:
        """Budget and subscription for re-licensing; None when it is off."""
        return None

    def allotment(self) -> int | None:
        """How many more licenses the subscription allows (None: not known)."""
        return None

    def relicense(self, license: LicenseRecord) -> Relicensed:
        """License the media of ``license`` again. Raises ``OutcomeUnknown`` when the answer is lost."""
        raise NotImplementedError

    def licenses_of_media(self, media_type: str, media_id: str) -> list[LicenseRecord]:
        """The account's licenses of one media item, newest first (to reconcile a licensing call)."""
        return []

    def open_url(self, url: str, label: str,
                 headers: dict[str, str] | None = None) -> AbstractContextManager[httpx.Response]:
        """Stream a download URL handed out by the API (e.g. by a licensing call)."""
        raise NotImplementedError

    def purchase_record(self, answer: Relicensed) -> dict[str, Any]:
        """What to keep in the state about a purchase to download it again later (no secrets)."""
        expires = datetime.now(UTC) + timedelta(hours=7, minutes=45)  # links last 8 hours
        return {"download_url": answer.url, "download_url_expires": expires.isoformat()}

    def open_purchased(self, license: LicenseRecord, kept: dict[str, Any],
                       headers: dict[str, str] | None = None) -> AbstractContextManager[httpx.Response] | None:
        """Download a purchase from what ``purchase_record`` kept; None when that no longer works."""
        url, expires = kept.get("download_url"), kept.get("download_url_expires")
        if url and expires and datetime.fromisoformat(expires) > datetime.now(UTC):
            return self.open_url(url, license.license_id, headers)
        return None

    def companions(self, license: LicenseRecord) -> list[str]:
        """Names of the files handed out with this license's file (an audio track's
        ``shorts_loops_stems`` archive); known once ``open_download`` has asked for the file."""
        return []

    def open_companion(self, license: LicenseRecord, name: str, headers: dict[str, str] | None = None,
                       fresh: bool = False) -> AbstractContextManager[httpx.Response]:
        """Stream the companion ``name`` of ``license``; ``fresh`` asks the API for a new link first."""
        raise NotImplementedError

    def size_rank(self, media_type: str, size: str | None) -> int:
        """Order of licensed sizes: a larger rank replaces a smaller file of the same media."""
        return 0

    def expected_bytes(self, license: LicenseRecord, details: dict[str, Any] | None) -> int | None:
        """The file size the metadata announces for this license, if any (catches silent truncation)."""
        return None

    def extension(self, license: LicenseRecord, details: dict[str, Any] | None) -> str | None:
        """The file extension known before downloading, if any."""
        return license.format

    def api_calls(self) -> dict[tuple[str, int], int]:
        """API calls made so far, by (endpoint, status)."""
        return {}

    @abc.abstractmethod
    def check(self) -> str:
        """Make one authenticated call; returns a one-line description of the account."""

    def close(self) -> None:
        """Release connections."""
