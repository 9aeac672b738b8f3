"""A part that fails during a multipart upload is sent again alone: the asset is neither
downloaded again nor uploaded again from its first part (issue 6)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from syncd.sandbox import Sandbox
from tests.fixtures.s3 import s3_client
from tests.fixtures.s3_faults import S3Fault
from tests.helpers import run_syncd, sandbox_config

MIB = 1024 * 1024
SIZE = 28 * MIB  # four parts of 8 MiB (the last one 4 MiB)


@pytest.mark.parametrize("kind", ["500", "reset"])
def test_a_failed_part_is_retried_alone(kind: str, tmp_path: Path, faulty_s3, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket, s3 = faulty_s3
    s3.faults.append(S3Fault("PUT", "partNumber=3", kind=kind, times=2))
    with Sandbox(seed=81, licenses=0, media_types=("video",)) as sandbox:
        sandbox.add_licenses(1, media_type="video", is_downloadable=True, file_bytes=SIZE, size="hd")
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["video"]}, destinations=[
            {"name": "archive", "kind": "s3", "bucket": bucket, "endpoint_url": endpoint}])
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-3000:]
        assert len([c for c in sandbox.calls if c.path.startswith("/download/")]) == 1  # downloaded once
    assert len(s3.calls("POST", "uploads")) == 1  # one multipart upload, never restarted
    assert len(s3.calls("POST", "uploadId=")) == 1  # completed once
    parts = Counter(parse_qs(r.query)["partNumber"][0] for r in s3.calls("PUT", "partNumber="))
    assert parts == {"1": 1, "2": 1, "3": 3, "4": 1}  # part 3: two failures, then through; no other part again
    client = s3_client(s3_bucket[0])
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    video = next(c["Key"] for c in client.list_objects_v2(Bucket=bucket)["Contents"] if not c["Key"].endswith(".json"))
    document = json.loads(client.get_object(Bucket=bucket, Key=video + ".json")["Body"].read())
    body = client.get_object(Bucket=bucket, Key=video)["Body"].read()
    assert len(body) == SIZE and hashlib.sha256(body).hexdigest() == document["file"]["sha256"]
    assert client.head_object(Bucket=bucket, Key=video)["Metadata"]["syncd-sha256"] == document["file"]["sha256"]
