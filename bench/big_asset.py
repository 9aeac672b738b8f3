"""Peak memory while syncing one large asset: it must stay flat, not grow with the file.

    python bench/big_asset.py [--gb 1]

Syncs one license of the given size from the sandbox (a separate process, generating the
bytes on the fly) to a directory and to S3 (moto, a separate process), and reports the peak
RSS of the syncd process alone, next to the peak RSS of the same command syncing a 1 MB asset
(the baseline: what the process needs anyway).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Servers, run_syncd, scratch, write_config  # noqa: E402


def peak_rss(size: int) -> tuple[float, int]:
    servers = Servers(1, size)
    try:
        directory = scratch()
        config = write_config(directory, servers.sandbox_url, [
            {"name": "library", "kind": "filesystem", "path": str(directory / "library")},
            {"name": "archive", "kind": "s3", "bucket": servers.new_bucket(), "endpoint_url": servers.s3_url}], 4)
        seconds, code, rss_kib = run_syncd(config)
        assert code == 0, f"syncd exited {code}"
        stored = sum(p.stat().st_size for p in (directory / "library").rglob("*") if p.is_file() and p.suffix != ".json")
        assert stored == size, (stored, size)
        return seconds, rss_kib
    finally:
        servers.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    args = parser.parse_args()
    size = int(args.gb * 1024**3)
    small_seconds, small_rss = peak_rss(1024 * 1024)
    big_seconds, big_rss = peak_rss(size)
    print(f"1 MB asset: peak RSS {small_rss / 1024:.1f} MiB ({small_seconds:.1f}s); "
          f"{args.gb:g} GB asset: peak RSS {big_rss / 1024:.1f} MiB ({big_seconds:.1f}s); "
          f"growth {(big_rss - small_rss) / 1024:.1f} MiB for {size / 1024**2:.0f} MiB more data")


if __name__ == "__main__":
    main()
