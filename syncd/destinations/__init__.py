"""Destination plug-ins and their registry: config ``kind`` -> class.

The registry names each class by module so a run imports only the destinations it uses
(boto3 alone costs a tenth of a second at every start).
"""

from __future__ import annotations

import importlib

from syncd.destinations.base import (
    SIDECAR_SUFFIX,
    Destination,
    ObjectInfo,
    StoredObject,
)

# An explicit list, not a scan: adding a destination is one module and one line here.
DESTINATION_KINDS: dict[str, str] = {
    "filesystem": "syncd.destinations.filesystem:FilesystemDestination",
    "s3": "syncd.destinations.s3:S3Destination",
    "wordpress": "syncd.destinations.wordpress:WordpressDestination",
}


def destination_class(kind: str) -> type[Destination]:
    """The class implementing destination ``kind`` (KeyError when unknown)."""
    module, _, name = DESTINATION_KINDS[kind].partition(":")
    cls: type[Destination] = getattr(importlib.import_module(module), name)
    return cls


__all__ = [
    "DESTINATION_KINDS",
    "SIDECAR_SUFFIX",
    "Destination",
    "ObjectInfo",
    "StoredObject",
    "destination_class",
]
