"""The destination interface: a handful of operations every target implements.

The engine only ever calls these; it never asks which kind of destination it holds.
An asset lives at ``key`` (the rendered template); its sidecar at ``key + ".json"``.
Writes are idempotent and atomic: a reader never sees a partial object, and putting the
same bytes twice leaves one object.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class StoredObject:
    """What a destination holds at a key."""

    key: str
    bytes: int
    sha256: str | None = None  # hex; None when the destination cannot tell cheaply


@dataclass(frozen=True)
class ObjectInfo:
    """Everything a destination may record about one asset file it stores."""

    size: int
    sha256: str  # hex digest of the whole file, verified before ``put`` is called
    content_type: str
    source: str
    media_type: str
    media_id: str
    license_id: str  # the license whose file this is (the largest size wins)
    sidecar: dict[str, Any] = field(default_factory=dict)  # the full sidecar document
    # The state knows every syncd object at this destination and none of this asset: a
    # destination that would look the asset up before storing it may skip the question.
    known_absent: bool = False


class Destination(abc.ABC):
    """One target the engine stores assets into."""

    kind: ClassVar[str]
    verifies_checksum: ClassVar[bool] = False  # the server rejects bytes not matching sha256
    replaces_files: ClassVar[bool] = True  # a larger license of stored media replaces the file
    sidecar_needs_asset: ClassVar[bool] = False  # a sidecar can only be stored after its asset
    checks_file_content: ClassVar[bool] = False  # the server inspects the bytes (a CMS refusing junk)
    stores_companions: ClassVar[bool] = True  # files that come with an asset (stems) are stored next to it

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """What is stored at ``key`` now, or None."""

    @abc.abstractmethod
    def put(self, key: str, path: Path, info: ObjectInfo) -> StoredObject:
        """Store the verified local file ``path`` at ``key``, atomically, replacing any object."""

    def refuse_size(self, key: str, size: int) -> None:
        """Raise ``DestinationError`` if a file of ``size`` bytes cannot be stored (asked before a download)."""

    @abc.abstractmethod
    def put_sidecar(self, key: str, document: bytes) -> None:
        """Store the sidecar JSON of the asset at ``key`` (at ``key + '.json'``), atomically."""

    @abc.abstractmethod
    def get_sidecar(self, key: str) -> bytes | None:
        """The sidecar JSON of the asset at ``key``, or None."""

    @abc.abstractmethod
    def iter_sidecars(self) -> Iterator[tuple[str, bytes]]:
        """Every sidecar at this destination as (asset key, JSON bytes); for rebuild-state."""

    def is_empty(self) -> bool:
        """True when no sidecar (no syncd asset) is stored here yet."""
        for _ in self.iter_sidecars():
            return False
        return True

    @abc.abstractmethod
    def check(self) -> str | None:
        """Prove the destination is reachable and writable without leaving anything behind.

        May return one line worth telling the user (a limit the destination found).

        Raises ``ConfigError`` or ``DestinationError`` with a message a user can act on.
        """

    def close(self) -> None:
        """Release connections and pools."""
