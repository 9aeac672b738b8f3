"""``syncd check``: config, state, credentials and destinations, verified without changing anything."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from syncd.config import Config
from syncd.errors import AuthError, ConfigError, SyncdError, UpstreamUnreachable
from syncd.http import RateGate
from syncd.runtime import build_destinations, build_sources
from syncd.sizes import human_bytes


def run_checks(config: Config, say: Callable[[str], None]) -> bool:
    """Print one line per check; raise the first error that decides the exit code."""
    say("ok    configuration is valid")
    _check_state(config, say)
    _check_spool(say)
    gate = RateGate(config.sync.max_wait)
    for source in build_sources(config, gate):
        try:
            say(f"ok    source {source.name}: {source.check()}")
        except (AuthError, UpstreamUnreachable, ConfigError):
            raise
        except SyncdError as error:
            raise UpstreamUnreachable(f"source {source.name}: {error}") from None
        finally:
            source.close()
    for destination in build_destinations(config):
        try:
            detail = destination.check()
            say(f"ok    destination {destination.name} ({destination.kind}) is writable"
                + (f"; {detail}" if detail else ""))
        finally:
            destination.close()
    return True


def _check_spool(say: Callable[[str], None]) -> None:
    """Where downloads are staged (``$TMPDIR``): usable, and how much room it has."""
    wanted = os.environ.get("TMPDIR")
    directory = Path(tempfile.gettempdir())  # the first usable of $TMPDIR, /tmp, /var/tmp ...
    if wanted and directory != Path(wanted):
        # tempfile passes over an unusable TMPDIR silently: the spool would land elsewhere.
        raise ConfigError(f"{wanted} is missing or not writable, so downloads would be staged in {directory} "
                          "instead; create it or point TMPDIR at a writable directory on a disk with room",
                          key="TMPDIR")
    free = shutil.disk_usage(directory).free
    say(f"ok    spool: downloads are staged in {directory} (TMPDIR), {human_bytes(free)} free")


def _check_state(config: Config, say: Callable[[str], None]) -> None:
    url = config.state.url
    if url.startswith("sqlite:///"):
        say(f"ok    state: {url} (SQLite; created on first sync if missing)")
        return
    try:
        engine = create_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except SQLAlchemyError as error:
        raise ConfigError(f"cannot connect to the state database: {error.__class__.__name__}", key="state.url") from None
    say(f"ok    state: connected to {engine.url.render_as_string(hide_password=True)}")
