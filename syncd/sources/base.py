"""The source interface: what an agency plug-in declares and yields.

A source pages its license history newest first (``history``), describes media in bulk
(``details``) and hands out a fresh download for a license (``open_download``). The engine
owns the stop rule, state and concurrency; a source owns only its API's shapes.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar

import httpx

from syncd.records import HistoryPage, LicenseRecord


class Source(abc.ABC):
    """One configured account at one agency."""

    kind: ClassVar[str]

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
    def open_download(self, license: LicenseRecord) -> AbstractContextManager[httpx.Response]:
        """A fresh, streaming download of the licensed file (links expire: ask just before use).

        Raises ``ItemSkipped`` when the license cannot be re-downloaded, ``DownloadRefused``
        when the URL was refused, ``TransientError`` on network trouble.
        """

    def can_redownload(self, media_type: str) -> bool:
        """Whether licenses of this media type can be fetched again without paying."""
        return True

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
