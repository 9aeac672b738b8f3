"""Transient faults of every kind, injected over real HTTP: each is survived with nothing lost or doubled."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from syncd.sandbox import FaultRule, Sandbox
from syncd.state import StateStore
from tests.helpers import library_files, run_syncd, sandbox_config

FAULTS = [
    ("history 503", FaultRule(path=r"^/v2/images/licenses$", kind="status", status=503, times=2)),
    ("history dropped", FaultRule(path=r"^/v2/images/licenses$", kind="drop", times=1)),
    ("history 429", FaultRule(path=r"^/v2/images/licenses$", kind="429", reset_in=1.0, times=1)),
    ("details 500", FaultRule(path=r"^/v2/images$", kind="status", status=500, times=2)),
    ("redownload 502", FaultRule(path=r"/downloads$", kind="status", status=502, times=3)),
    ("redownload dropped", FaultRule(path=r"/downloads$", kind="drop", times=2)),
    ("download truncated", FaultRule(path=r"^/download/", kind="truncate", fraction=0.3, times=3)),
    ("download truncated, no length", FaultRule(path=r"^/download/", kind="truncate_nolength", fraction=0.5, times=3)),
    ("download 503", FaultRule(path=r"^/download/", kind="status", status=503, times=3)),
    ("download dropped", FaultRule(path=r"^/download/", kind="drop", times=3)),
    ("download link expired", FaultRule(path=r"^/download/", kind="status", status=403, times=2)),
]


@pytest.mark.parametrize("name, rule", FAULTS, ids=[name for name, _ in FAULTS])
def test_a_transient_fault_is_survived_in_the_same_pass(name: str, rule: FaultRule, tmp_path: Path) -> None:
    with Sandbox(seed=71, licenses=12) as sandbox:
        sandbox.faults.add(rule)
        config = sandbox_config(tmp_path, sandbox.url)
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-2000:]
        assert rule.fired >= 1, "the fault was injected"
        counts = StateStore(f"sqlite:///{tmp_path / 'state.db'}").status_counts()
        assert counts["queued"] == 0 and counts["failed"] == 0
        assets, sidecars = library_files(tmp_path / "library")
        downloadable = {str(x["image"]["id"]) for x in sandbox.licenses("image") if x.get("is_downloadable", True)}
        documents = [json.loads(p.read_text()) for p in sidecars]
        assert sorted(d["media_id"] for d in documents) == sorted(downloadable)  # each once, none missing
        for document in documents:
            body = (tmp_path / "library" / document["file"]["key"]).read_bytes()
            assert len(body) == document["file"]["bytes"]
            assert hashlib.sha256(body).hexdigest() == document["file"]["sha256"]
        assert not [p for p in (tmp_path / "library").rglob("*") if "syncd-tmp" in p.name]


def test_a_persistent_fault_fails_items_after_max_attempts_and_retry_requeues(tmp_path: Path) -> None:
    with Sandbox(seed=72, licenses=5) as sandbox:
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="truncate_nolength", fraction=0.5, times=-1))
        config = sandbox_config(tmp_path, sandbox.url, sync={"max_attempts": 2})
        assert run_syncd("sync", config=config).code == 1
        assert run_syncd("sync", config=config).code == 1
        status = json.loads(run_syncd("status", "--json", config=config).stdout)
        failed = [p for p in status["problems"] if p["state"] == "failed"]
        assert failed and all(p["attempts"] == 2 and "truncated" in p["reason"] for p in failed)
        assert not library_files(tmp_path / "library")[0]  # nothing truncated was ever stored
        assert run_syncd("sync", config=config).code == 0  # failed items wait for `syncd retry`
        sandbox.faults.clear()
        assert run_syncd("retry", "--all", config=config).code == 0
        assert run_syncd("sync", config=config).code == 0
        assert StateStore(f"sqlite:///{tmp_path / 'state.db'}").status_counts()["failed"] == 0
