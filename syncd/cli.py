"""The command line: parse, call, print, exit with the contract's code. No logic of its own."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import structlog
import typer

from syncd.config import Config, config_path, load_config
from syncd.engine import PassOptions, PassResult
from syncd.errors import ConfigError, SyncdError
from syncd.http import RateGate, SharedRateGate
from syncd.logs import setup_logging
from syncd.redact import redact
from syncd.sizes import human_bytes
from syncd.state import StateStore
from syncd.stopping import StopSignals, exit_after

log = structlog.get_logger("syncd")
app = typer.Typer(
    name="syncd",
    help="Keep a DAM, CMS or S3 archive in step with the stock media you have licensed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class LogFormat(str, Enum):
    """--log-format values."""

    json = "json"
    console = "console"


class Globals:
    """Options given before the command."""

    config: Optional[str] = None
    log_format: Optional[str] = None
    verbose: bool = False


@app.callback()
def _global_options(
    config: Annotated[Optional[str], typer.Option("--config", help="Config file (default $SYNCD_CONFIG, else ./syncd.toml).")] = None,
    log_format: Annotated[Optional[LogFormat], typer.Option("--log-format", help="json (default off a terminal) or console.")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="HTTP-level detail in the logs.")] = False,
) -> None:
    Globals.config = config
    Globals.log_format = log_format.value if log_format else None
    Globals.verbose = verbose
    os.umask(0o077)  # state, temp files and sidecars (license data) are not world-readable
    setup_logging(log_format.value if log_format else None, verbose)


def main() -> None:
    """Console-script entry point."""
    app()


# --- shared plumbing ---------------------------------------------------------------------------


def _fail(error: SyncdError) -> None:
    typer.echo(redact(f"syncd: {error}"), err=True)
    raise typer.Exit(error.exit_code)


def _load() -> Config:
    path, _named = config_path(Globals.config)
    return load_config(path)


def _parse_date(value: Optional[str], option: str) -> Optional[datetime]:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"not a date: {value!r} (use YYYY-MM-DD)", key=option) from None


def _open_store(config: Config, dry_run: bool = False) -> StateStore:
    url = config.state.url
    if dry_run and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            url = "sqlite://"  # a dry run creates nothing
    return StateStore(url)


def _one_pass(options: PassOptions) -> None:
    """sync and backfill: one pass under the lock, with progress on a terminal."""
    from syncd.engine import Reporters
    from syncd.metrics import Metrics
    from syncd.progress import make_reporter
    from syncd.runtime import build_destinations, build_engine, build_sources, close_all

    try:
        config = _load()
        if options.source:
            config.source(options.source)
        store = _open_store(config, options.dry_run)
        gate = SharedRateGate(config.sync.max_wait, store) if store.shared else RateGate(config.sync.max_wait)
        sources = build_sources(config, gate, options.source)
        destinations = build_destinations(config)
        metrics = Metrics() if config.metrics.textfile and not options.dry_run else None
        started = time.monotonic()
        with make_reporter(enabled=not options.dry_run) as progress:
            reporter = Reporters(progress, metrics.reporter()) if metrics else progress
            engine = build_engine(config, store, sources, destinations, reporter)
            if options.dry_run:
                result = engine.run_pass(options)
            else:
                with _graceful(engine, config.sync.grace):
                    result = engine.run_recorded_pass(options)
        seconds = time.monotonic() - started
        if not options.dry_run:
            log.info("pass_summary", command=options.command, seconds=round(seconds, 3),
                     exit_code=result.exit_code, **result.counts())
        if metrics is not None:
            metrics.record_pass(options.command, result, seconds, sources, gate, store.status_counts())
            metrics.write_textfile(config.metrics.textfile)
        close_all(sources, destinations)
    except SyncdError as error:
        _fail(error)
    _print_result(result, options)
    raise typer.Exit(result.exit_code)


def _graceful(engine: Any, grace: float) -> StopSignals:
    """SIGTERM/SIGINT: take no new item, let items in flight finish within ``grace``; a second signal exits now."""

    def first(name: str) -> None:
        typer.echo(f"syncd: {name}: finishing items in flight (up to {grace:.0f}s)", err=True)
        engine.request_stop()
        exit_after(grace)

    return StopSignals(first, 130, "syncd: second signal, exiting now (items in flight stay queued)")


def _print_result(result: PassResult, options: PassOptions) -> None:
    if options.dry_run:
        costs: dict[str, int] = {}
        for line in result.dry_run_plan:
            typer.echo(f"would {line['action']}: {line['source']} {line['media_type']} {line['media_id']} "
                       f"(license {line['license_id']}, size {line['size']})")
            if line["relicense_cost"]:
                costs[line["subscription_id"] or "-"] = costs.get(line["subscription_id"] or "-", 0) + line["relicense_cost"]
        cost = ", ".join(f"{n} license(s) on subscription {s}" for s, n in costs.items()) or "nothing"
        typer.echo(f"dry run: {result.discovered} new license(s) found, {len(result.dry_run_plan)} item(s) to work on; "
                   f"re-licensing would cost {cost}. Nothing was licensed, downloaded, uploaded or recorded.")
        return
    typer.echo(
        f"{options.command}: {result.discovered} new license(s) discovered; {result.synced} synced "
        f"({human_bytes(result.bytes)}), {result.failed} failed, {result.skipped} skipped"
        + (f", {result.deferred} waiting for a licensing outcome" if result.deferred else "")
    )
    if result.stop is not None:
        typer.echo(redact(f"syncd: pass stopped early: {result.stop}"), err=True)
    elif result.failed:
        typer.echo("syncd: some items failed; they stay queued and are retried on the next run (see `syncd status`)", err=True)


# --- commands ----------------------------------------------------------------------------------


@app.command()
def sync(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would happen; change nothing.")] = False,
    source: Annotated[Optional[str], typer.Option("--source", help="Only this source.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="At most N licenses fetched this pass.")] = None,
) -> None:
    """One incremental pass over every configured source, then exit."""
    _one_pass(PassOptions(command="sync", dry_run=dry_run, source=source, limit=limit))


@app.command()
def backfill(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would happen; change nothing.")] = False,
    since: Annotated[Optional[str], typer.Option("--since", help="Oldest license date (YYYY-MM-DD).")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Newest license date (YYYY-MM-DD).")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Only this source.")] = None,
    media: Annotated[Optional[str], typer.Option("--media", help="Only this media type.")] = None,
) -> None:
    """Walk the whole history (or the window), ignoring the stop rule; resumable."""
    try:
        options = PassOptions(command="backfill", dry_run=dry_run, source=source, media=media,
                              since=_parse_date(since, "--since"), until=_parse_date(until, "--until"))
    except SyncdError as error:
        _fail(error)
    if media is not None and media not in ("image", "video", "audio", "sfx", "editorial"):
        _fail(ConfigError("must be one of image, video, audio, sfx, editorial", key="--media"))
    _one_pass(options)


@app.command()
def run() -> None:
    """Daemon: a pass now, then on the configured schedule, until SIGTERM/SIGINT."""
    from syncd.daemon import Daemon

    try:
        code = Daemon(_load()).run()
    except SyncdError as error:
        _fail(error)
    raise typer.Exit(code)


@app.command()
def worker() -> None:
    """Fetch and store queued items from a shared PostgreSQL state until SIGTERM/SIGINT."""
    from syncd.worker import run_worker

    try:
        code = run_worker(_load())
    except SyncdError as error:
        _fail(error)
    raise typer.Exit(code)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (schema syncd.status/1).")] = False,
) -> None:
    """Counts per state, failures with reasons, last runs."""
    from syncd.status import collect_status, render_status

    try:
        config = _load()
        store = StateStore(config.state.url)
        report = collect_status(store)
    except SyncdError as error:
        _fail(error)
    typer.echo(json.dumps(report, indent=2) if as_json else render_status(report))


@app.command()
def retry(
    license_ids: Annotated[Optional[list[str]], typer.Argument(help="License ids to re-queue.")] = None,
    all_items: Annotated[bool, typer.Option("--all", help="Re-queue every failed or skipped item.")] = False,
) -> None:
    """Re-queue failed or skipped items."""
    if not all_items and not license_ids:
        _fail(ConfigError("name license ids, or --all", key="retry"))
    try:
        config = _load()
        store = StateStore(config.state.url)
        with store.lock("retry"):
            count, unknown = store.retry(None if all_items else license_ids)
    except SyncdError as error:
        _fail(error)
    typer.echo(f"re-queued {count} item(s); the next sync fetches them")
    if unknown:
        typer.echo(f"syncd: unknown license id(s): {', '.join(unknown)}", err=True)
        raise typer.Exit(2)


@app.command("rebuild-state")
def rebuild_state(
    destination: Annotated[str, typer.Option("--destination", help="The destination whose sidecars to read.")],
) -> None:
    """Recreate lost state from the sidecars at a destination."""
    from syncd.rebuild import rebuild_from_sidecars
    from syncd.runtime import build_destination

    try:
        config = _load()
        entry = config.destination(destination)
        store = StateStore(config.state.url)
        target = build_destination(entry, config.destinations.index(entry))
        with store.lock("rebuild-state"):
            assets, licenses = rebuild_from_sidecars(store, target)
    except SyncdError as error:
        _fail(error)
    typer.echo(f"rebuilt state from {destination}: {assets} asset(s), {licenses} license(s) recorded as synced")


@app.command()
def check() -> None:
    """Validate config, credentials (an authenticated call) and that destinations are writable."""
    from syncd.checks import run_checks

    try:
        config = _load()
        ok = run_checks(config, typer.echo)
    except SyncdError as error:
        _fail(error)
    raise typer.Exit(0 if ok else 3)


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo writes.")] = Path("syncd-demo"),
) -> None:
    """A complete sync against the built-in sandbox into ./syncd-demo/, no account needed."""
    from syncd.demo import run_demo

    setup_logging(Globals.log_format, Globals.verbose, quiet=True)  # the demo tells its own story
    try:
        code = run_demo(directory, typer.echo)
    except SyncdError as error:
        _fail(error)
    raise typer.Exit(code)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")] = 8765,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated history.")] = 1,
    licenses: Annotated[int, typer.Option("--licenses", help="Licenses per media type.")] = 50,
) -> None:
    """Serve the built-in Shutterstock-compatible sandbox on 127.0.0.1."""
    from syncd.sandbox import serve

    serve(port=port, seed=seed, licenses=licenses)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
