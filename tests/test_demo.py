"""`syncd demo`: a newcomer's first minute, with no account."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import library_files, run_syncd


def test_the_demo_syncs_both_agencies_and_leaves_a_readable_state(tmp_path: Path) -> None:
    result = run_syncd("demo", "--dir", str(tmp_path / "demo"), token=None)
    assert result.code == 0, result.stderr[-2000:]
    assert "pass 2: 3 new licenses discovered" in result.stdout
    assets, sidecars = library_files(tmp_path / "demo" / "library")
    documents = [json.loads(p.read_text()) for p in sidecars]
    archives = [d["audio"]["shorts_loops_stems"] for d in documents if "shorts_loops_stems" in d.get("audio", {})]
    assert len(archives) == 1 and len(assets) == len(sidecars) + 1 > 40  # every asset, and the one track's stems
    assert {d["source"] for d in documents} == {"shutterstock", "bigstock"}
    assert {d["media_type"] for d in documents} == {"image", "video", "audio", "sfx"}
    status = run_syncd("--config", str(tmp_path / "demo" / "syncd.toml"), "status", "--json", token=None)
    counts = json.loads(status.stdout)["counts"]
    assert counts["synced"] > 30 and counts["queued"] == 0 and counts["failed"] == 0
    again = run_syncd("demo", "--dir", str(tmp_path / "demo"), token=None)  # a second run starts afresh
    first_pass = [line for line in result.stdout.splitlines() if line.startswith("pass 1:")]
    assert again.code == 0 and first_pass and first_pass[0] in again.stdout
