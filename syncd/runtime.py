"""The composition root: builds the store, sources, destinations and engine from a ``Config``."""

from __future__ import annotations

from pathlib import Path

from syncd.config import (
    Config,
    DestinationConfig,
    FilesystemDestinationConfig,
    S3DestinationConfig,
    SourceConfig,
    WordpressDestinationConfig,
    read_secret,
)
from syncd.destinations import DESTINATION_KINDS, Destination, destination_class
from syncd.engine import Engine, Reporter
from syncd.errors import ConfigError
from syncd.http import RateGate
from syncd.naming import KeyTemplate
from syncd.sources import SOURCE_KINDS, Source
from syncd.state import StateStore


def build_sources(config: Config, gate: RateGate, only: str | None = None) -> list[Source]:
    """Every configured source (or the one named), secrets read now: a missing one exits 3."""
    return [
        _build_source(entry, gate, index)
        for index, entry in enumerate(config.sources)
        if only in (None, entry.name)
    ]


def _build_source(entry: SourceConfig, gate: RateGate, index: int) -> Source:
    kind = SOURCE_KINDS.get(entry.kind)
    if kind is None:
        raise ConfigError(f"source kind {entry.kind!r} is not available in this version of syncd",
                          key=f"sources[{index}].kind")
    return kind(entry, gate, key_prefix=f"sources[{index}]")  # type: ignore[call-arg]


def build_destination(entry: DestinationConfig, index: int = 0) -> Destination:
    """One destination from its table."""
    if isinstance(entry, FilesystemDestinationConfig):
        return destination_class("filesystem")(entry.name, Path(entry.path).expanduser())  # type: ignore[call-arg]
    if isinstance(entry, S3DestinationConfig):
        return destination_class("s3")(entry.name, entry.bucket, prefix=entry.prefix,  # type: ignore[call-arg]
                                       endpoint_url=entry.endpoint_url or None, region_name=entry.region or None)
    if isinstance(entry, WordpressDestinationConfig):
        password = read_secret(entry.password_env, entry.password_file, f"destination {entry.name!r} password")
        return destination_class("wordpress")(entry.name, entry.url, entry.username, password)  # type: ignore[call-arg]
    known = ", ".join(sorted(DESTINATION_KINDS))
    raise ConfigError(f"destination kind {entry.kind!r} is not available in this version of syncd "
                      f"(available: {known})", key=f"destinations[{index}].kind")


def build_destinations(config: Config) -> list[Destination]:
    """Every configured destination."""
    return [build_destination(entry, index) for index, entry in enumerate(config.destinations)]


def build_engine(config: Config, store: StateStore, sources: list[Source], destinations: list[Destination],
                 reporter: Reporter | None = None) -> Engine:
    """An engine for this configuration."""
    return Engine(store, sources, destinations, KeyTemplate(config.naming.template),
                  concurrency=config.sync.concurrency, max_attempts=config.sync.max_attempts, reporter=reporter)


def close_all(sources: list[Source], destinations: list[Destination]) -> None:
    """Release every source's and destination's connections."""
    for source in sources:
        source.close()
    for destination in destinations:
        destination.close()
