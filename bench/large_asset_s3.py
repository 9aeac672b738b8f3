"""One large asset to S3: syncd vs a plain streamed download + multipart upload, same run.

    python bench/large_asset_s3.py [--gb 1] [--rounds 2]

The baseline streams the download straight into boto3's multipart upload (download and
upload overlap, nothing checked, no metadata). syncd downloads to a spool file (hashing as it
goes, resumable with Range), verifies length and sha256, then uploads multipart with the
object's metadata: the two do not overlap, because S3 fixes metadata (syncd-sha256) when an
upload starts. Ratio = baseline seconds / syncd seconds (1.0 = as fast).
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

BASELINE = """
import sys, httpx, boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
sandbox, s3_url, bucket = sys.argv[1:4]
api = httpx.Client(base_url=sandbox, headers={"Authorization": "Bearer sandbox-token", "User-Agent": "bench"})
license = api.get("/v2/images/licenses", params={"per_page": 1}).json()["data"][0]
url = api.post(f"/v2/images/licenses/{license['id']}/downloads", json={"size": license["image"]["format"]["size"]}).json()["url"]
s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))

class Reader:
    def __init__(self, response):
        self.chunks = response.iter_raw(1 << 20)
        self.buffer = b""
    def read(self, size=-1):
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        data, self.buffer = (self.buffer, b"") if size < 0 else (self.buffer[:size], self.buffer[size:])
        return data

with httpx.stream("GET", url, headers={"User-Agent": "bench"}, timeout=60) as response:
    s3.upload_fileobj(Reader(response), bucket, "baseline.bin",
                      Config=TransferConfig(multipart_chunksize=8 << 20, max_concurrency=4))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = int(args.gb * 1024**3)
    servers = Servers(1, size)
    ratios, ours, theirs = [], [], []
    try:
        for _ in range(args.rounds):
            directory = scratch()
            config = write_config(directory, servers.sandbox_url, [
                {"name": "archive", "kind": "s3", "bucket": servers.new_bucket(), "endpoint_url": servers.s3_url}], 4)
            seconds, code, rss = run_syncd(config)
            assert code == 0
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", BASELINE, servers.sandbox_url, servers.s3_url, servers.new_bucket()],
                           check=True, env={**os.environ, **S3_ENV})
            baseline = time.perf_counter() - started
            ours.append(seconds)
            theirs.append(baseline)
            ratios.append(baseline / seconds)
            print(f"syncd {seconds:.1f}s (peak RSS {rss / 1024:.0f} MiB), baseline {baseline:.1f}s, "
                  f"ratio {ratios[-1]:.3f}", flush=True)
    finally:
        servers.close()
    print(f"{args.gb:g} GB: syncd median {statistics.median(ours):.1f}s, baseline median "
          f"{statistics.median(theirs):.1f}s, ratio baseline/syncd median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
