"""API calls per new asset, and the cost of a no-op pass.

    python bench/noop_and_calls.py [--licenses 500] [--rounds 5]

Syncs N licenses from the sandbox to a directory, counts the API calls the sandbox served
(history pages, bulk details, redownloads) per synced asset, then times no-op passes
(nothing new upstream) as whole processes and counts their API calls. The baseline for the
no-op pass is the bare process start (`syncd --help`) measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import run_syncd, scratch, write_config  # noqa: E402

from syncd.sandbox import Sandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--licenses", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with Sandbox(seed=1, licenses=0) as sandbox:
        sandbox.add_licenses(args.licenses, media_type="image", is_downloadable=True, file_bytes=64 * 1024)
        directory = scratch()
        config = write_config(directory, sandbox.url, [
            {"name": "library", "kind": "filesystem", "path": str(directory / "library")}], 4)
        seconds, code, _ = run_syncd(config)
        assert code == 0
        api_calls = [c for c in sandbox.calls if c.path.startswith("/v2/")]
        print(f"first pass: {args.licenses} assets in {seconds:.2f}s, {len(api_calls)} API calls "
              f"= {len(api_calls) / args.licenses:.4f} per new asset "
              f"(history {sum(c.path.endswith('/licenses') for c in api_calls)}, "
              f"details {sum(c.path == '/v2/images' for c in api_calls)}, "
              f"redownload {sum(c.path.endswith('/downloads') for c in api_calls)})")
        noop, bare = [], []
        for _ in range(args.rounds):
            before = len(sandbox.calls)
            seconds, code, _ = run_syncd(config)
            assert code == 0
            noop.append(seconds)
            calls = len(sandbox.calls) - before
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "syncd.cli", "--help"], check=True, capture_output=True)
            bare.append(time.perf_counter() - started)
        print(f"no-op pass: median {statistics.median(noop):.3f}s (min {min(noop):.3f}, max {max(noop):.3f}), "
              f"{calls} API call(s) each; bare process start median {statistics.median(bare):.3f}s; "
              f"no-op minus start {statistics.median(noop) - statistics.median(bare):.3f}s")


if __name__ == "__main__":
    main()
