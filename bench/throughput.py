"""Throughput: syncd vs a plain concurrent download+upload of the same files, same concurrency.

    python bench/throughput.py [--licenses 500] [--mb 2] [--concurrency 4] [--rounds 3]

Both sides run as their own processes against the same sandbox and S3 server (moto) on
loopback, alternating A B A B; the ratio is baseline seconds / syncd seconds per pair
(1.0 = as fast as the baseline; higher is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import S3_ENV, Servers, run_syncd, scratch, write_config  # noqa: E402


def run_baseline(sandbox_url: str, s3_url: str, bucket: str, concurrency: int) -> float:
    environment = {**os.environ, **S3_ENV}
    started = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).with_name("baseline_transfer.py")), sandbox_url, s3_url,
                    bucket, str(concurrency)], check=True, env=environment)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--licenses", type=int, default=500)
    parser.add_argument("--mb", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    servers = Servers(args.licenses, int(args.mb * 1024 * 1024))
    ratios, syncd_times, baseline_times = [], [], []
    try:
        for round_number in range(args.rounds):
            bucket = servers.new_bucket()
            directory = scratch()
            config = write_config(directory, servers.sandbox_url, [
                {"name": "archive", "kind": "s3", "bucket": bucket, "endpoint_url": servers.s3_url}], args.concurrency)
            syncd_seconds, code, _ = run_syncd(config)
            assert code == 0, f"syncd exited {code}"
            baseline_seconds = run_baseline(servers.sandbox_url, servers.s3_url, servers.new_bucket(), args.concurrency)
            syncd_times.append(syncd_seconds)
            baseline_times.append(baseline_seconds)
            ratios.append(baseline_seconds / syncd_seconds)
            print(f"round {round_number + 1}: syncd {syncd_seconds:.2f}s, baseline {baseline_seconds:.2f}s, "
                  f"ratio {ratios[-1]:.3f}", flush=True)
    finally:
        servers.close()
    total_mb = args.licenses * args.mb
    print(f"{args.licenses} x {args.mb} MB, concurrency {args.concurrency}: "
          f"syncd median {statistics.median(syncd_times):.2f}s ({total_mb / statistics.median(syncd_times):.1f} MB/s), "
          f"baseline median {statistics.median(baseline_times):.2f}s; "
          f"ratio baseline/syncd median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
