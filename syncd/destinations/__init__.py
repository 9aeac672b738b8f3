"""Destination plug-ins and their registry: config ``kind`` -> class."""

from __future__ import annotations

from syncd.destinations.base import SIDECAR_SUFFIX, Destination, ObjectInfo, StoredObject
from syncd.destinations.filesystem import FilesystemDestination
from syncd.destinations.s3 import S3Destination

# An explicit list, not a scan: adding a destination is one module and one line here.
DESTINATION_KINDS: dict[str, type[Destination]] = {
    FilesystemDestination.kind: FilesystemDestination,
    S3Destination.kind: S3Destination,
}

__all__ = [
    "DESTINATION_KINDS",
    "SIDECAR_SUFFIX",
    "Destination",
    "FilesystemDestination",
    "ObjectInfo",
    "S3Destination",
    "StoredObject",
]
