"""Upload throughput into a real WordPress: syncd vs a plain REST upload of the same files.

    python bench/wordpress_upload.py [--licenses 60] [--mb 1] [--concurrency 4] [--rounds 2]

Starts a WordPress the way the tests do (tests/fixtures/wordpress.py; run
scripts/install-wordpress.sh first) and reports its setup time. Then, per round, on an
emptied media library each time:

- ``syncd sync``: the whole command, sandbox → WordPress (download, state, upload, metadata);
- ``destination``: syncd's WordPress destination alone on the same files, ``put`` then
  ``put_sidecar`` per file (the upload, the metadata update; no lookup: the library is empty);
- ``plain REST``: one ``POST /wp/v2/media`` per file, raw body, nothing else.

All three run with the same concurrency; the files are the very files syncd uploaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from syncd.destinations import ObjectInfo  # noqa: E402
from syncd.destinations.wordpress import WordpressDestination  # noqa: E402
from syncd.sandbox import Sandbox  # noqa: E402
from tests.fixtures.wordpress import WordpressSite  # noqa: E402

PASSWORD_ENV = "BENCH_WP_PASSWORD"


def write_config(directory: Path, sandbox: Sandbox, site: WordpressSite, concurrency: int) -> Path:
    config = directory / "syncd.toml"
    config.write_text(f"""
[state]
url = "sqlite:///{directory / 'state.db'}"
[sync]
concurrency = {concurrency}
[metrics]
listen = ""
[[sources]]
name = "shutterstock"
kind = "shutterstock"
base_url = "{sandbox.url}"
token_env = "BENCH_TOKEN"
media = ["image"]
download_hosts = []
[[destinations]]
name = "wp"
kind = "wordpress"
url = "{site.url}"
username = "{site.admin.username}"
password_env = "{PASSWORD_ENV}"
""", encoding="utf-8")
    return config


def run_syncd(config: Path, site: WordpressSite) -> float:
    environment = {**os.environ, "BENCH_TOKEN": "sandbox-token", PASSWORD_ENV: site.admin.password}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "syncd.cli", "--log-format", "json", "--config", str(config), "sync"],
                          env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"syncd exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def collect_files(site: WordpressSite, into: Path) -> list[tuple[Path, dict]]:
    """The files syncd uploaded, copied out, with the sidecar of each."""
    into.mkdir(parents=True, exist_ok=True)
    files = []
    for attachment in site.attachments():
        meta = attachment["meta"]
        path = into / meta["syncd_key"].rsplit("/", 1)[-1]
        path.write_bytes(site.file_bytes(attachment))
        files.append((path, json.loads(meta["syncd_sidecar"])))
    return files


def run_destination(site: WordpressSite, files: list[tuple[Path, dict]], concurrency: int) -> float:
    destination = WordpressDestination("wp", site.url, site.admin.username, site.admin.password)

    def store(entry: tuple[Path, dict]) -> None:
        path, document = entry
        data = path.read_bytes()
        info = ObjectInfo(size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type="image/jpeg",
                          source=document["source"], media_type=document["media_type"],
                          media_id=document["media_id"], license_id=document["licenses"][0]["id"], sidecar=document,
                          known_absent=True)  # the library was emptied: what the engine says on a first try
        key = document["file"]["key"]
        destination.put(key, path, info)
        destination.put_sidecar(key, json.dumps(document, ensure_ascii=False, indent=2).encode() + b"\n")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(store, files))
    seconds = time.perf_counter() - started
    destination.close()
    return seconds


def run_plain(site: WordpressSite, files: list[tuple[Path, dict]], concurrency: int) -> float:
    client = httpx.Client(auth=(site.admin.username, site.admin.password), timeout=300)

    def upload(entry: tuple[Path, dict]) -> None:
        path, _ = entry
        with open(path, "rb") as body:
            response = client.post(f"{site.url}/wp-json/wp/v2/media", content=body.read(), headers={
                "Content-Type": "image/jpeg", "Content-Disposition": f'attachment; filename="{path.name}"'})
        response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(upload, files))
    seconds = time.perf_counter() - started
    client.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--licenses", type=int, default=60)
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-wordpress-"))
    site = WordpressSite(workdir / "site").start()
    print(f"WordPress setup (database, config, wp_install, php -S answering): {site.setup_seconds:.2f}s", flush=True)
    times: dict[str, list[float]] = {"syncd sync": [], "destination": [], "plain REST": []}
    try:
        with Sandbox(seed=1, licenses=0) as sandbox:
            sandbox.add_licenses(args.licenses, media_type="image", is_downloadable=True,
                                 file_bytes=int(args.mb * 1024 * 1024), size="huge")
            for round_number in range(args.rounds):
                directory = workdir / f"round-{round_number}"
                directory.mkdir()
                site.delete_all_attachments()
                times["syncd sync"].append(run_syncd(write_config(directory, sandbox, site, args.concurrency), site))
                files = collect_files(site, directory / "files")
                megabytes = sum(path.stat().st_size for path, _ in files) / 1e6
                site.delete_all_attachments()
                times["destination"].append(run_destination(site, files, args.concurrency))
                site.delete_all_attachments()
                times["plain REST"].append(run_plain(site, files, args.concurrency))
                print(f"round {round_number + 1} ({len(files)} files, {megabytes:.1f} MB): " + ", ".join(
                    f"{name} {values[-1]:.2f}s ({megabytes / values[-1]:.1f} MB/s)" for name, values in times.items()),
                    flush=True)
    finally:
        site.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    plain = statistics.median(times["plain REST"])
    print(f"medians, concurrency {args.concurrency}: " + ", ".join(
        f"{name} {statistics.median(values):.2f}s (plain/{name} = {plain / statistics.median(values):.2f})"
        for name, values in times.items()))


if __name__ == "__main__":
    main()
