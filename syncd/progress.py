"""Progress on a terminal (rich): counts, bytes, rate, and an ETA once the total is known."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from syncd.engine import Reporter


class RichReporter(Reporter):
    """Two bars: licenses discovered and items done (with bytes and rate)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._lock = threading.Lock()
        self.discovery = progress.add_task("discovering", total=None, bytes=0)
        self.items = progress.add_task("syncing", total=None, visible=False)
        self.bytes = progress.add_task("downloaded", total=None, visible=False)

    def discovering(self, source: str, media_type: str, total: int | None) -> None:
        self.progress.update(self.discovery, description=f"discovering {source} {media_type}", total=total)

    def discovered(self, new: int) -> None:
        self.progress.advance(self.discovery, new)

    def planned(self, items: int, total_bytes: int | None) -> None:
        self.progress.update(self.discovery, visible=False)
        self.progress.update(self.items, total=items, visible=True)
        self.progress.update(self.bytes, visible=True)

    def item_done(self, outcome: str, size: int, **_labels: object) -> None:
        with self._lock:
            self.progress.advance(self.items, 1)
            self.progress.advance(self.bytes, size)


@contextmanager
def make_reporter(enabled: bool = True) -> Iterator[Reporter]:
    """A rich display when stderr is a terminal, else the silent default (logs tell the story)."""
    if not enabled or not sys.stderr.isatty():
        yield Reporter()
        return
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    )
    with progress:
        yield RichReporter(progress)
