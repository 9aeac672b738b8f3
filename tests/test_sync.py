"""End-to-end behaviour of `syncd sync` against the sandbox over real HTTP, to a filesystem."""

from __future__ import annotations

import json
from pathlib import Path

from syncd.sandbox import FaultRule, Sandbox
from syncd.state import StateStore
from tests.helpers import library_files, run_syncd, sandbox_config


def _downloadable(sandbox: Sandbox) -> list[dict]:
    return [lic for lic in sandbox.licenses("image") if lic.get("is_downloadable", True)]


def _media_ids(licenses: list[dict]) -> set[str]:
    return {str(lic["image"]["id"]) for lic in licenses}


def test_first_sync_lands_every_downloadable_license_with_a_sidecar(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    result = run_syncd("sync", config=config)
    assert result.code == 0, result.stderr
    assets, sidecars = library_files(tmp_path / "library")
    expected_media = _media_ids(_downloadable(sandbox))
    assert len(assets) == len(expected_media)
    assert len(sidecars) == len(assets)
    documents = [json.loads(p.read_text()) for p in sidecars]
    assert {d["media_id"] for d in documents} == expected_media
    for document, sidecar_path in zip(documents, sidecars):
        asset = sidecar_path.with_name(sidecar_path.name.removesuffix(".json"))
        assert document["schema"] == "syncd.asset/1"
        assert document["file"]["bytes"] == asset.stat().st_size
        assert document["file"]["key"] == asset.relative_to(tmp_path / "library").as_posix()
        for field in ("source", "media_type", "media_id", "licenses", "description", "keywords", "categories",
                      "contributor", "original_filename", "editorial", "file", "synced_at"):
            assert field in document
        assert document["licenses"][0]["id"].startswith("i")
        assert document["licenses"][0]["licensed_at"].endswith("Z")


def test_sha256_in_sidecar_matches_the_bytes(sandbox: Sandbox, tmp_path: Path) -> None:
    import hashlib

    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
    _, sidecars = library_files(tmp_path / "library")
    for sidecar_path in sidecars:
        document = json.loads(sidecar_path.read_text())
        asset = sidecar_path.with_name(sidecar_path.name.removesuffix(".json"))
        assert hashlib.sha256(asset.read_bytes()).hexdigest() == document["file"]["sha256"]


def test_non_downloadable_licenses_are_skipped_with_a_reason(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.add_licenses(2, media_type="image", is_downloadable=False)
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
    status = json.loads(run_syncd("status", "--json", config=config).stdout)
    skipped = [p for p in status["problems"] if p["state"] == "skipped"]
    assert status["counts"]["skipped"] >= 2
    assert all("re-licensing is off" in p["reason"] for p in skipped)


def test_an_item_still_skipped_for_the_same_reason_is_not_logged_again(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.add_licenses(2, media_type="image", is_downloadable=False)
    config = sandbox_config(tmp_path, sandbox.url)
    first = run_syncd("sync", config=config)
    skipped = [line for line in first.stderr.splitlines() if '"outcome": "skipped"' in line]
    assert len(skipped) >= 2

    again = run_syncd("sync", config=config)  # reconsidered, still skipped, for the same reason

    assert again.code == 0
    assert f"{len(skipped)} skipped" in again.stdout  # still counted in the summary
    assert '"outcome": "skipped"' not in again.stderr  # but not one log line per item every pass
    verbose = run_syncd("-v", "sync", config=config)
    assert verbose.stderr.count('"outcome": "skipped"') == len(skipped)  # -v shows them


def test_a_no_op_pass_makes_one_list_call_per_media_type(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
    before = len(sandbox.calls)
    result = run_syncd("sync", config=config)
    assert result.code == 0
    calls = sandbox.calls[before:]
    assert [(c.method, c.path) for c in calls] == [("GET", "/v2/images/licenses")]


def test_an_incremental_pass_fetches_only_the_new_licenses(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
    assets_before, _ = library_files(tmp_path / "library")
    new = sandbox.add_licenses(5, media_type="image", is_downloadable=True)
    before = len(sandbox.calls)
    assert run_syncd("sync", config=config).code == 0
    redownloads = [c for c in sandbox.calls[before:] if c.method == "POST" and c.path.endswith("/downloads")]
    assert sorted(c.path.split("/")[4] for c in redownloads) == sorted(lic["id"] for lic in new)
    assets_after, _ = library_files(tmp_path / "library")
    assert len(assets_after) == len(assets_before) + 5


def test_stop_rule_survives_a_pass_interrupted_after_page_one(tmp_path: Path) -> None:
    """Page 1 recorded, then discovery dies: the next pass must not stop at the first known id."""
    with Sandbox(seed=3, licenses=450) as sandbox:
        config = sandbox_config(tmp_path, sandbox.url)
        sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", kind="drop", after=1, times=-1))
        interrupted = run_syncd("sync", config=config)
        assert interrupted.code == 3, interrupted.stderr
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        assert store.frontier("shutterstock", "image") is None
        assert sum(store.status_counts().values()) == 200  # page 1 only
        sandbox.faults.clear()
        assert run_syncd("sync", config=config).code == 0
        counts = store.status_counts()
        assert sum(counts.values()) == 450
        assert counts["queued"] == 0 and counts["failed"] == 0
        frontier = store.frontier("shutterstock", "image")
        assert frontier is not None and frontier.license_id == sandbox.licenses("image")[0]["id"]


def test_licenses_arriving_mid_pass_are_neither_missed_nor_duplicated(tmp_path: Path) -> None:
    with Sandbox(seed=4, licenses=420) as sandbox:
        config = sandbox_config(tmp_path, sandbox.url)
        added: list[dict] = []

        def add_after_first_page(call) -> None:  # type: ignore[no-untyped-def]
            if call.path == "/v2/images/licenses" and call.query.get("page") == ["1"] and not added:
                added.extend(sandbox.add_licenses(7, media_type="image", is_downloadable=True))

        sandbox.on_request(add_after_first_page)
        assert run_syncd("sync", config=config).code == 0
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        assert sum(store.status_counts().values()) == 420  # every original license, once
        assert run_syncd("sync", config=config).code == 0
        assert sum(store.status_counts().values()) == 427  # and the 7 that arrived mid-pass
        redownloads = [c.path for c in sandbox.calls if c.method == "POST" and c.path.endswith("/downloads")]
        assert len(redownloads) == len(set(redownloads))  # nothing fetched twice


def test_same_media_licensed_twice_is_one_asset_listing_both_licenses(sandbox: Sandbox, tmp_path: Path) -> None:
    first = sandbox.add_licenses(1, media_type="image", size="medium", is_downloadable=True)[0]
    media_id = str(first["image"]["id"])
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
    second = sandbox.add_licenses(1, media_type="image", media_id=media_id, size="huge", is_downloadable=True)[0]
    assert run_syncd("sync", config=config).code == 0
    matches = [p for p in library_files(tmp_path / "library")[1] if json.loads(p.read_text())["media_id"] == media_id]
    assert len(matches) == 1
    document = json.loads(matches[0].read_text())
    assert {entry["id"] for entry in document["licenses"]} >= {first["id"], second["id"]}
    assert any(e["size"] == "huge" for e in document["licenses"])
    asset = matches[0].with_name(matches[0].name.removesuffix(".json"))
    assert asset.stat().st_size == document["file"]["bytes"]


def test_hostile_descriptions_stay_inside_the_destination(sandbox: Sandbox, tmp_path: Path) -> None:
    hostile = ["../../../etc/passwd", "a\x00b\nc\x1b[31m", "🚲🔥 " * 50, "x" * 5000, "/absolute/path", "..\\..\\win"]
    for description in hostile:
        sandbox.add_licenses(1, media_type="image", description=description, is_downloadable=True)
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
    root = (tmp_path / "library").resolve()
    assets, sidecars = library_files(root)
    for path in assets + sidecars:
        assert path.resolve().is_relative_to(root)
        for part in path.relative_to(root).parts:
            assert len(part.encode()) <= 255
            assert not any(ord(ch) < 32 for ch in part)
    assert not (tmp_path / "etc").exists()


def test_the_api_token_never_reaches_download_urls(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    result = run_syncd("sync", config=config)
    assert result.code == 0
    downloads = [c for c in sandbox.calls if c.path.startswith("/download/")]
    assert downloads and all(c.authorization is None for c in downloads)
    assert "sandbox-token" not in result.stdout + result.stderr


def test_downloads_only_from_allowed_hosts(tmp_path: Path) -> None:
    with Sandbox(seed=5, licenses=3, download_host="localhost") as sandbox:
        config = sandbox_config(tmp_path, sandbox.url, sync={"max_attempts": 1})
        refused = run_syncd("sync", config=config)
        assert refused.code == 1
        assert not [c for c in sandbox.calls if c.path.startswith("/download/")]
        status = json.loads(run_syncd("status", "--json", config=config).stdout)
        assert any("download_hosts" in (p["reason"] or "") for p in status["problems"])
        allowed = sandbox_config(tmp_path, sandbox.url, source={"download_hosts": ["localhost"]})
        assert run_syncd("retry", "--all", config=allowed).code == 0
        assert run_syncd("sync", config=allowed).code == 0


def test_dry_run_changes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    result = run_syncd("sync", "--dry-run", config=config)
    assert result.code == 0, result.stderr
    assert "would download" in result.stdout
    assert not (tmp_path / "state.db").exists()
    assert not (tmp_path / "library").exists()
    assert not [c for c in sandbox.calls if c.method == "POST"]


def test_limit_fetches_at_most_n_and_the_rest_stays_queued(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", "--limit", "4", config=config).code == 0
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    counts = store.status_counts()
    assert counts["synced"] + counts["skipped"] <= 4
    assert counts["queued"] > 0
    assert run_syncd("sync", config=config).code == 0
    assert store.status_counts()["queued"] == 0
