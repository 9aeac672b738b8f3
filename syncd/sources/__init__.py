"""Source plug-ins and their registry: config ``kind`` → class."""

from __future__ import annotations

from syncd.sources.base import Source
from syncd.sources.bigstock import BigstockSource
from syncd.sources.shutterstock import ShutterstockSource

# An explicit list, not a scan: adding an agency is one module and one line here.
SOURCE_KINDS: dict[str, type[Source]] = {
    ShutterstockSource.kind: ShutterstockSource,
    BigstockSource.kind: BigstockSource,
}

__all__ = ["SOURCE_KINDS", "BigstockSource", "ShutterstockSource", "Source"]
