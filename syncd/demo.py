"""``syncd demo``: a real sync against the built-in sandbox, for someone without an account.

Two passes show the product's core: the first fetches the whole (generated) history, then a
few new licenses appear upstream and the second pass fetches only those — the stop rule. The
history holds images, video clips, music (one track with its stems archive) and sound
effects. A Bigstock lightbox shows purchases within a budget: some in the first pass, the
rest in the next.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from syncd.config import Config, parse_config
from syncd.destinations import Destination
from syncd.engine import PassOptions, PassResult
from syncd.http import RateGate
from syncd.progress import make_reporter
from syncd.runtime import build_destinations, build_engine, build_sources, close_all
from syncd.sandbox import Sandbox
from syncd.sources import Source
from syncd.state import StateStore

DEMO_CONFIG = """# Written by `syncd demo` so that `syncd --config THIS status` can read the demo's state.
# The sandbox it synced from is gone; `syncd demo` again starts afresh.
[state]
url = "sqlite:///{state}"

[[sources]]
name = "shutterstock"
kind = "shutterstock"
base_url = "http://127.0.0.1:8765"
token_env = "SYNCD_DEMO_TOKEN"
download_hosts = []

[[destinations]]
name = "library"
kind = "filesystem"
path = "{library}"
"""
DEMO_TOKEN_ENV = "SYNCD_DEMO_TOKEN"
DEMO_SECRET_ENV = "SYNCD_DEMO_BIGSTOCK_SECRET"
DEMO_LICENSES = 36  # images
DEMO_OTHER_MEDIA = {"video": 3, "audio": 3, "sfx": 2}  # small files: the demo takes seconds
DEMO_LABELS = {"video": "video clips", "audio": "music tracks", "sfx": "sound effects"}
DEMO_OTHER_BYTES = 512 * 1024
DEMO_LIGHTBOX = "Campaign 2026"
DEMO_LIGHTBOX_IMAGES = 6
DEMO_PURCHASES = 4


def run_demo(directory: Path, say: Callable[[str], None]) -> int:
    """Run the demo into ``directory``; returns the exit code."""
    directory = directory.resolve()
    library = directory / "library"
    marker = directory / ".syncd-demo"
    if marker.exists():  # a demo run before: start afresh (only what the demo itself made)
        shutil.rmtree(library, ignore_errors=True)
        for suffix in ("", "-wal", "-shm"):
            (directory / f"state.db{suffix}").unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by `syncd demo`; the next demo run replaces this directory's library and state\n")
    with Sandbox(seed=7, licenses=DEMO_LICENSES) as sandbox:
        os.environ[DEMO_TOKEN_ENV] = sandbox.token
        os.environ[DEMO_SECRET_ENV] = sandbox.bigstock.secret
        sandbox.bigstock.add_lightbox(DEMO_LIGHTBOX, range(5001, 5001 + DEMO_LIGHTBOX_IMAGES))
        for media_type, count in DEMO_OTHER_MEDIA.items():
            sandbox.add_licenses(count, media_type=media_type, file_bytes=DEMO_OTHER_BYTES)
        sandbox.add_licenses(1, media_type="audio", file_bytes=DEMO_OTHER_BYTES, stems_bytes=DEMO_OTHER_BYTES)
        config = parse_config({
            "state": {"url": f"sqlite:///{directory / 'state.db'}"},
            "sync": {"concurrency": 4},
            "sources": [
                {"name": "shutterstock", "kind": "shutterstock", "base_url": sandbox.url,
                 "token_env": DEMO_TOKEN_ENV, "media": ["image", "video", "audio", "sfx"], "download_hosts": []},
                {"name": "bigstock", "kind": "bigstock", "base_url": sandbox.url,
                 "account_id": sandbox.bigstock.account_id, "secret_env": DEMO_SECRET_ENV,
                 "lightboxes": [DEMO_LIGHTBOX], "max_purchases_per_run": DEMO_PURCHASES},
            ],
            "destinations": [{"name": "library", "kind": "filesystem", "path": str(library)}],
        }, origin="demo")
        others = ", ".join(f"{count + (media_type == 'audio')} {DEMO_LABELS[media_type]}"
                           for media_type, count in DEMO_OTHER_MEDIA.items())
        say(f"syncd demo: a sandbox at {sandbox.url} serves Shutterstock licenses of {DEMO_LICENSES} images, "
            f"{others} (one track with its stems archive), and a Bigstock lightbox of "
            f"{DEMO_LIGHTBOX_IMAGES} images (budget: {DEMO_PURCHASES} purchases per pass)")
        store = StateStore(config.state.url)
        sources = build_sources(config, RateGate(config.sync.max_wait))
        destinations = build_destinations(config)
        try:
            first = _pass(config, store, sources, destinations)
            say(f"pass 1: {first.discovered} new licenses discovered, {first.synced} synced, "
                f"{first.skipped} skipped, {first.failed} failed")
            sandbox.add_licenses(3, media_type="image")
            say("3 new licenses appeared upstream …")
            second = _pass(config, store, sources, destinations)
            say(f"pass 2: {second.discovered} new licenses discovered, {second.synced} synced "
                "(Shutterstock discovery stopped at the frontier the first pass left; Bigstock bought the "
                "lightbox images the first pass's budget left)")
        finally:
            close_all(sources, destinations)
        files = [p for p in library.rglob("*") if p.is_file() and not p.name.endswith(".json")]
        say("")
        say(f"{len(files)} files with their .json sidecars are in {library}")
        config_file = directory / "syncd.toml"
        config_file.write_text(DEMO_CONFIG.format(state=directory / "state.db", library=library))
        say(f"state is in {directory / 'state.db'}")
        say("")
        say("what next:")
        say(f"  look:     ls -R {library} | head; cat \"$(find {library} -name '*.json' | head -1)\"")
        say(f"  status:   syncd --config {config_file} status   (skipped: licenses that cannot be")
        say("            re-downloaded while re-licensing is off, and images beyond the purchase budget)")
        say("  your own: copy config/filesystem.toml, config/s3.toml, config/wordpress.toml or")
        say("            config/bigstock.toml to ./syncd.toml, set the token it names, then:")
        say("            syncd check && syncd sync --dry-run && syncd sync")
        return max(first.exit_code, second.exit_code)


def _pass(config: Config, store: StateStore, sources: list[Source], destinations: list[Destination]) -> PassResult:
    with make_reporter() as reporter:
        engine = build_engine(config, store, sources, destinations, reporter)
        return engine.run_recorded_pass(PassOptions(command="sync"))
