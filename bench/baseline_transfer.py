"""The baseline: list the history, redownload, stream to a temp file, upload — no state, no checks.

    python bench/baseline_transfer.py SANDBOX_URL S3_URL BUCKET CONCURRENCY
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx
from botocore.config import Config

sandbox_url, s3_url, bucket, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
headers = {"Authorization": "Bearer sandbox-token", "User-Agent": "bench"}
api = httpx.Client(base_url=sandbox_url, headers=headers, limits=httpx.Limits(max_connections=64))
files = httpx.Client(headers={"User-Agent": "bench"}, limits=httpx.Limits(max_connections=64))
s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))

licenses, page = [], 1
while True:
    body = api.get("/v2/images/licenses", params={"per_page": 200, "page": page, "sort": "newest"}).json()
    licenses += body["data"]
    if len(body["data"]) < 200:
        break
    page += 1


def transfer(license: dict) -> None:
    url = api.post(f"/v2/images/licenses/{license['id']}/downloads", json={"size": license["image"]["format"]["size"]}).json()["url"]
    with tempfile.TemporaryFile() as spool:
        with files.stream("GET", url) as response:
            for chunk in response.iter_raw(1 << 20):
                spool.write(chunk)
        spool.seek(0)
        s3.upload_fileobj(spool, bucket, f"baseline/{license['image']['id']}.jpg")


with ThreadPoolExecutor(concurrency) as pool:
    list(pool.map(transfer, licenses))
