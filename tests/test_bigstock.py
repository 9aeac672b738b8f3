"""Bigstock: lightboxes become purchases, within a budget, never twice, over real HTTP (seed 001)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.config import BigstockSourceConfig
from syncd.errors import AuthError, ConfigError, DownloadRefused, ItemFailed, ItemSkipped
from syncd.http import RateGate
from syncd.records import LicenseRecord
from syncd.sandbox import FaultRule, Sandbox
from syncd.sources.bigstock import BigstockSource
from syncd.state import StateStore
from tests.helpers import library_files, run_syncd, write_config

ACCOUNT = "123456"
SECRET = "bigstock-test-secret-7c1e"
SECRET_ENV = "SYNCD_TEST_BIGSTOCK_SECRET"


@pytest.fixture
def bigstock() -> Iterator[Sandbox]:
    """A sandbox whose Bigstock account is ACCOUNT with SECRET, and no lightboxes yet."""
    with Sandbox(seed=41, licenses=0, bigstock_account=ACCOUNT, bigstock_secret=SECRET) as sandbox:
        yield sandbox


def _config(tmp_path: Path, sandbox: Sandbox, lightboxes: list[Any], budget: int, sync: dict[str, Any] | None = None,
            **source: Any) -> Path:
    entry = {"name": "bigstock", "kind": "bigstock", "base_url": sandbox.url, "account_id": ACCOUNT,
             "secret_env": SECRET_ENV, "lightboxes": [str(box) for box in lightboxes], "size_code": "l",
             "max_purchases_per_run": budget, **source}
    return write_config(tmp_path / "syncd.toml", {
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "sync": {"concurrency": 2, "max_wait": "30s", **(sync or {})},
        "sources": [entry],
        "destinations": [{"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")}],
    })


def _syncd(*args: str, config: Path, secret: str | None = SECRET, **kwargs: Any):  # type: ignore[no-untyped-def]
    return run_syncd(*args, config=config, env={SECRET_ENV: secret} if secret is not None else None, **kwargs)


def _status(config: Path) -> dict[str, Any]:
    return json.loads(_syncd("status", "--json", config=config).stdout)


def _store(tmp_path: Path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}")


def _purchase_calls(sandbox: Sandbox, since: int = 0) -> list[Any]:
    return [c for c in sandbox.calls[since:] if c.path.endswith("/purchase")]


def _dump(database: Path) -> list[Any]:
    with sqlite3.connect(database) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return [(t, sorted(map(repr, connection.execute(f"SELECT * FROM {t}")))) for t in tables]


def _sha1(*parts: object) -> str:
    return hashlib.sha1("".join(str(p) for p in parts).encode()).hexdigest()


# --- buying within the budget ------------------------------------------------------------


def test_a_budget_buys_exactly_that_many_per_pass_and_never_an_image_twice(bigstock: Sandbox, tmp_path: Path) -> None:
    images = list(range(3001, 3008))  # N = 7
    bigstock.bigstock.add_lightbox("Campaign 2026", images)
    bigstock.bigstock.max_limit = 3  # three pages of lightbox content
    config = _config(tmp_path, bigstock, ["Campaign 2026"], budget=3)  # M = 3

    first = _syncd("sync", config=config)
    assert first.code == 0, first.stderr[-2000:]
    assert len(bigstock.bigstock.purchases) == 3
    status = _status(config)
    waiting = [p for p in status["problems"] if p["state"] == "skipped"]
    assert len(waiting) == 4 and all("budget" in p["reason"] for p in waiting)
    assert status["counts"]["synced"] == 3 * 2  # each bought image: its planned row and its purchase

    assert _syncd("sync", config=config).code == 0
    assert len(bigstock.bigstock.purchases) == 6
    assert _syncd("sync", config=config).code == 0
    assert len(bigstock.bigstock.purchases) == 7
    assert _syncd("sync", config=config).code == 0  # nothing left to buy
    bought = bigstock.bigstock.purchased_image_ids()
    assert len(bought) == 7 and sorted(bought) == images  # every image once
    assert _store(tmp_path).status_counts() == {"synced": 14, "queued": 0, "failed": 0, "skipped": 0}
    pages = [c.query.get("page") for c in bigstock.calls if re.fullmatch(r"/2/\d+/lightbox/\d+/", c.path)]
    assert pages[:3] == [["1"], ["2"], ["3"]]

    assets, sidecars = library_files(tmp_path / "library")
    assert len(assets) == 7 and len(sidecars) == 7
    purchases = {p.image_id: p for p in bigstock.bigstock.purchases}
    for path in sidecars:
        document = json.loads(path.read_text())
        asset = tmp_path / "library" / document["file"]["key"]
        assert hashlib.sha256(asset.read_bytes()).hexdigest() == document["file"]["sha256"]
        assert asset.read_bytes() == bigstock.bigstock.file_for(int(document["media_id"]), "l").read()
        purchase = purchases[int(document["media_id"])]
        bought_license = next(e for e in document["licenses"] if e["id"].startswith("bigstock-purchase-"))
        assert bought_license["id"] == f"bigstock-purchase-{purchase.download_id}"
        assert bought_license["size"] == "l" and bought_license["licensed_at"]


def test_every_auth_key_sent_is_the_sha1_the_seed_defines(bigstock: Sandbox, tmp_path: Path) -> None:
    box = bigstock.bigstock.add_lightbox("Picks", [4101, 4102])
    config = _config(tmp_path, bigstock, [box], budget=5)
    assert _syncd("sync", config=config).code == 0
    assert _store(tmp_path).status_counts()["synced"] == 4
    checked: dict[str, int] = {}
    for call in bigstock.calls:
        if "auth_key" not in call.query:
            continue
        sent = call.query["auth_key"][0]
        if re.fullmatch(r"/2/\d+/lightbox/", call.path):
            expected, kind = _sha1(SECRET, ACCOUNT), "lightboxes"
        elif match := re.fullmatch(r"/2/\d+/lightbox/(\d+)/", call.path):
            expected, kind = _sha1(SECRET, ACCOUNT, match.group(1)), "lightbox"
        elif call.path.endswith("/purchase"):
            expected, kind = _sha1(SECRET, ACCOUNT, call.query["image_id"][0]), "purchase"
        elif call.path.endswith("/download"):
            expected, kind = _sha1(SECRET, ACCOUNT, call.query["download_id"][0]), "download"
        else:
            raise AssertionError(f"unexpected call with an auth_key: {call.path}")
        assert sent == expected and len(sent) == 40, (kind, call.path)
        checked[kind] = checked.get(kind, 0) + 1
    assert checked == {"lightboxes": 1, "lightbox": 1, "purchase": 2, "download": 2}
    assert all(use.valid for use in bigstock.bigstock.auth_keys)


def test_an_image_in_two_lightboxes_is_bought_once(bigstock: Sandbox, tmp_path: Path) -> None:
    bigstock.bigstock.add_lightbox("Spring", [5001, 5002])
    summer = bigstock.bigstock.add_lightbox("Summer", [5002, 5003])
    config = _config(tmp_path, bigstock, ["Spring", summer], budget=10)  # a title and an id
    assert _syncd("sync", config=config).code == 0
    assert _syncd("sync", config=config).code == 0
    assert sorted(bigstock.bigstock.purchased_image_ids()) == [5001, 5002, 5003]
    rows = _store(tmp_path).licenses_of_media("bigstock", "image", "5002")
    assert sorted(r.license_id for r in rows)[0] == "bigstock-5002" and len(rows) == 2  # planned + bought
    assets, _ = library_files(tmp_path / "library")
    assert len(assets) == 3


def test_a_budget_of_zero_buys_nothing_and_an_image_taken_out_of_the_lightbox_is_not_bought(
        bigstock: Sandbox, tmp_path: Path) -> None:
    box = bigstock.bigstock.add_lightbox("Shortlist", [6001, 6002, 6003])
    assert _syncd("sync", config=_config(tmp_path, bigstock, ["Shortlist"], budget=0)).code == 0
    assert bigstock.bigstock.purchases == [] and _purchase_calls(bigstock) == []
    assert _store(tmp_path).status_counts()["skipped"] == 3  # planned, waiting for a budget

    bigstock.bigstock.remove_image(box, 6002)
    config = _config(tmp_path, bigstock, ["Shortlist"], budget=5)
    assert _syncd("sync", config=config).code == 0
    assert sorted(bigstock.bigstock.purchased_image_ids()) == [6001, 6003]
    reasons = [p["reason"] for p in _status(config)["problems"]]
    assert len(reasons) == 1 and "no longer in any of the lightboxes" in reasons[0]

    bigstock.bigstock.add_images(box, [6002])  # back in the lightbox: bought on the next pass
    assert _syncd("sync", config=config).code == 0
    assert sorted(bigstock.bigstock.purchased_image_ids()) == [6001, 6002, 6003]


# --- dry run --------------------------------------------------------------------------


def test_dry_run_lists_what_would_be_bought_against_the_budget_and_changes_nothing(
        bigstock: Sandbox, tmp_path: Path) -> None:
    box = bigstock.bigstock.add_lightbox("Campaign", [7001, 7002, 7003, 7004])
    config = _config(tmp_path, bigstock, ["Campaign"], budget=2)

    fresh = _syncd("sync", "--dry-run", config=config)
    assert fresh.code == 0, fresh.stderr[-2000:]
    assert fresh.stdout.count("would re-license") == 2
    assert fresh.stdout.count("budget of the pass reached") == 2
    assert "2 license(s)" in fresh.stdout
    assert not (tmp_path / "state.db").exists() and not (tmp_path / "library").exists()
    assert _purchase_calls(bigstock) == []

    assert _syncd("sync", config=config).code == 0
    bought_first = bigstock.bigstock.purchased_image_ids()
    # What the dry run said it would buy is what the pass bought.
    assert sorted(re.findall(r"would re-license.*? image (\d+) ", fresh.stdout)) == sorted(map(str, bought_first))
    bigstock.bigstock.add_images(box, [7005])
    before, calls = _dump(tmp_path / "state.db"), len(bigstock.calls)
    again = _syncd("sync", "--dry-run", config=config)
    assert again.code == 0, again.stderr[-2000:]
    assert again.stdout.count("would re-license") == 2 and "budget" in again.stdout
    assert "1 new license(s)" in again.stdout
    assert _dump(tmp_path / "state.db") == before
    assert not [c for c in bigstock.calls[calls:] if c.path.endswith(("/purchase", "/download"))]
    assert len(bigstock.bigstock.purchases) == 2


# --- a purchase whose answer is lost -----------------------------------------------------


def test_a_lost_purchase_answer_is_never_bought_again_until_retry(bigstock: Sandbox, tmp_path: Path) -> None:
    bigstock.bigstock.add_lightbox("One", [8001])
    bigstock.faults.add(FaultRule(path=r"^/2/\d+/purchase$", kind="lost_response", times=1))
    config = _config(tmp_path, bigstock, ["One"], budget=5)

    first = _syncd("sync", config=config)
    assert first.code == 1  # bought upstream, but syncd cannot know: no history to check, failed for good
    assert bigstock.bigstock.purchased_image_ids() == [8001]
    assert _syncd("sync", config=config).code == 0  # a failed item waits for `syncd retry`
    assert bigstock.bigstock.purchased_image_ids() == [8001]  # never bought again on its own
    problems = _status(config)["problems"]
    assert [(p["license_id"], p["state"]) for p in problems] == [("bigstock-8001", "failed")]
    assert "no purchase history" in problems[0]["reason"] and "syncd retry bigstock-8001" in problems[0]["reason"]

    retried = _syncd("retry", "bigstock-8001", config=config)
    assert retried.code == 0, retried.stderr
    assert _syncd("sync", config=config).code == 0
    assert bigstock.bigstock.purchased_image_ids() == [8001, 8001]  # the user asked for it
    assert _store(tmp_path).status_counts() == {"synced": 2, "queued": 0, "failed": 0, "skipped": 0}


def test_a_sigkill_right_after_the_purchase_call_is_never_bought_again_until_retry(
        bigstock: Sandbox, tmp_path: Path) -> None:
    bigstock.bigstock.add_lightbox("Three", [9001, 9002, 9003])
    config = _config(tmp_path, bigstock, ["Three"], budget=10, sync={"concurrency": 1})
    process = subprocess.Popen([sys.executable, "-m", "syncd.cli", "--config", str(config), "sync"],
                               env={**os.environ, SECRET_ENV: SECRET},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_on_the_second_purchase(call) -> None:  # type: ignore[no-untyped-def]
        if call.path.endswith("/purchase") and len(bigstock.bigstock.purchases) == 2:
            os.kill(process.pid, signal.SIGKILL)  # bought; the answer never arrives

    bigstock.on_request(kill_on_the_second_purchase)
    process.wait(timeout=60)
    bigstock.on_request(lambda call: None)
    assert process.returncode == -signal.SIGKILL
    first, killed = bigstock.bigstock.purchased_image_ids()

    assert _syncd("sync", config=config).code == 1  # the third is bought; the killed one fails for good
    assert _syncd("sync", config=config).code == 0
    bought = bigstock.bigstock.purchased_image_ids()
    assert sorted(bought) == [9001, 9002, 9003]  # the killed one is not bought twice
    problems = _status(config)["problems"]
    assert [(p["media_id"], p["state"]) for p in problems] == [(str(killed), "failed")]
    assert "no clear answer" in problems[0]["reason"] and f"syncd retry bigstock-{killed}" in problems[0]["reason"]

    assert _syncd("retry", f"bigstock-{killed}", config=config).code == 0
    assert _syncd("sync", config=config).code == 0
    assert bigstock.bigstock.purchased_image_ids().count(killed) == 2
    assert bigstock.bigstock.purchased_image_ids().count(first) == 1


# --- secrets and errors -------------------------------------------------------------------


def test_a_wrong_secret_exits_3_without_printing_it(bigstock: Sandbox, tmp_path: Path) -> None:
    bigstock.bigstock.add_lightbox("Campaign", [1101])
    config = _config(tmp_path, bigstock, ["Campaign"], budget=5)
    wrong = "not-the-secret-9f8e7d"
    for command in ("sync", "check"):
        result = _syncd(command, config=config, secret=wrong)
        assert result.code == 3, (command, result.stdout, result.stderr)
        output = result.stdout + result.stderr
        assert wrong not in output and SECRET not in output
        assert SECRET_ENV in output and "refused" in output
        assert _sha1(wrong, ACCOUNT) not in output
    assert bigstock.bigstock.purchases == []

    missing = _syncd("sync", config=config, secret=None)
    assert missing.code == 3 and SECRET_ENV in missing.stderr


def test_no_auth_key_appears_in_the_output_even_verbose(bigstock: Sandbox, tmp_path: Path) -> None:
    bigstock.bigstock.add_lightbox("Campaign", [1201, 1202])
    config = _config(tmp_path, bigstock, ["Campaign"], budget=5)
    result = _syncd("-v", "sync", config=config)
    assert result.code == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    sent = {c.query["auth_key"][0] for c in bigstock.calls if "auth_key" in c.query}
    assert len(sent) == 6 and not [key for key in sent if key in output]
    assert SECRET not in output
    database = (tmp_path / "state.db").read_bytes()
    assert SECRET.encode() not in database and not [key for key in sent if key.encode() in database]


def test_check_names_the_lightboxes_and_the_budget(bigstock: Sandbox, tmp_path: Path) -> None:
    bigstock.bigstock.add_lightbox("Campaign 2026", [1301, 1302])
    result = _syncd("check", config=_config(tmp_path, bigstock, ["Campaign 2026"], budget=4))
    assert result.code == 0, result.stderr
    assert "secret accepted" in result.stdout and "'Campaign 2026'" in result.stdout and "2 images" in result.stdout
    assert "up to 4 image(s) per pass" in result.stdout


def test_an_unknown_lightbox_is_a_configuration_error_naming_the_key(bigstock: Sandbox, tmp_path: Path) -> None:
    bigstock.bigstock.add_lightbox("Campaign", [1401])
    result = _syncd("sync", config=_config(tmp_path, bigstock, ["Campain"], budget=1))
    assert result.code == 2, result.stderr
    assert "sources[0].lightboxes" in result.stderr and "'Campaign'" in result.stderr


# --- the source on its own, against the sandbox --------------------------------------------


def _source(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, secret: str = SECRET, **overrides: Any) -> BigstockSource:
    monkeypatch.setenv(SECRET_ENV, secret)
    config = BigstockSourceConfig(**{"name": "bigstock", "kind": "bigstock", "base_url": sandbox.url,
                                     "account_id": ACCOUNT, "secret_env": SECRET_ENV, "lightboxes": ["Box"],
                                     "max_purchases_per_run": 5, **overrides})
    return BigstockSource(config, RateGate(30.0), key_prefix="sources[0]")


def _planned(image_id: int) -> LicenseRecord:
    from datetime import UTC, datetime
    return LicenseRecord(source="bigstock", media_type="image", license_id=f"bigstock-{image_id}",
                         media_id=str(image_id), licensed_at=datetime.now(UTC), size="l", is_downloadable=False)


def test_history_pages_every_lightbox_once_per_image(bigstock: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    bigstock.bigstock.add_lightbox("Box", [1, 2, 3, 4, 5])
    bigstock.bigstock.add_lightbox("Other", [5, 6], private=False)
    bigstock.bigstock.max_limit = 2
    source = _source(bigstock, monkeypatch, lightboxes=["Box", "other"])  # titles match case-insensitively too
    pages = list(source.history("image"))
    records = [r for page in pages for r in page.records]
    assert [r.license_id for r in records] == [f"bigstock-{i}" for i in range(1, 7)]
    assert all(r.is_downloadable is False and r.size == "l" and r.format == "jpg" for r in records)
    assert [r.licensed_at for r in records] == sorted((r.licensed_at for r in records), reverse=True)
    assert len(pages) == 3 + 1
    source.close()


def test_details_are_mapped_for_the_sidecar(bigstock: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    bigstock.bigstock.set_image(1501, title="Crazy Guy Cartoon", description="crazy guy cartoon eps",
                                keywords="big,cartoon,crazy", contributor="Tim",
                                categories=[{"name": "Conceptual:Humorous"}])
    source = _source(bigstock, monkeypatch)
    found = source.details("image", ["1501", "1501"])
    entry = found["1501"]
    assert entry["title"] == "Crazy Guy Cartoon" and entry["description"] == "crazy guy cartoon eps"
    assert entry["keywords"] == ["big", "cartoon", "crazy"]
    assert entry["categories"] == [{"name": "Conceptual:Humorous"}]
    assert entry["contributor"] == {"id": "Tim"}
    assert {f["size_code"] for f in entry["formats"]} >= {"s", "m", "l"}
    assert len([c for c in bigstock.calls if c.path.endswith("/image/1501")]) == 1
    source.close()


@pytest.mark.parametrize("in_http_status", [True, False], ids=["http-status", "envelope-only"])
def test_purchase_refusals_become_clear_item_errors(bigstock: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                   in_http_status: bool) -> None:
    bigstock.bigstock.errors_in_http_status = in_http_status
    bigstock.bigstock.set_image(1601, formats=[{"label": "small", "size_code": "s", "width": 1, "height": 1}])
    source = _source(bigstock, monkeypatch)
    with pytest.raises(ItemFailed, match=r"size 'l'.*available: s") as refused:
        source.relicense(_planned(1601))
    assert refused.value.final
    bigstock.bigstock.purchase_refusal = (402, "Insufficient funds")
    with pytest.raises(ItemSkipped, match="Insufficient funds"):
        source.relicense(_planned(1602))
    assert bigstock.bigstock.purchases == []
    wrong = _source(bigstock, monkeypatch, secret="wrong-secret-000")
    with pytest.raises(AuthError) as auth:
        wrong.relicense(_planned(1603))
    assert "wrong-secret-000" not in str(auth.value) and SECRET_ENV in str(auth.value)
    source.close()
    wrong.close()


def test_a_purchase_keeps_its_download_id_and_downloads_it_again(bigstock: Sandbox,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    source = _source(bigstock, monkeypatch)
    answer = source.relicense(_planned(1701))
    kept = source.purchase_record(answer)
    purchase = bigstock.bigstock.purchases[0]
    assert answer.license_id == f"bigstock-purchase-{purchase.download_id}"
    assert kept["download_id"] == str(purchase.download_id) and kept["size_code"] == "l" and kept["purchased_at"]
    assert "auth_key" not in json.dumps(kept) and SECRET not in json.dumps(kept) and "http" not in json.dumps(kept)
    assert answer.url is not None and "auth_key" not in answer.url
    expected = bigstock.bigstock.file_for(1701, "l").read()
    bought = LicenseRecord(source="bigstock", media_type="image", license_id=answer.license_id, media_id="1701",
                           licensed_at=_planned(1701).licensed_at, size="l", is_downloadable=True)
    for opener in (lambda: source.open_url(answer.url or "", "x"), lambda: source.open_purchased(bought, kept),
                   lambda: source.open_purchased(bought, {}), lambda: source.open_download(bought)):
        with opener() as response:  # type: ignore[union-attr]
            assert response.read() == expected
    assert bigstock.bigstock.downloads == [purchase.download_id] * 4
    assert len(bigstock.bigstock.purchases) == 1
    source.close()


def test_download_errors_come_from_the_response_headers(bigstock: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _source(bigstock, monkeypatch)
    missing = LicenseRecord(source="bigstock", media_type="image", license_id="bigstock-purchase-999",
                            media_id="1", licensed_at=_planned(1).licensed_at, is_downloadable=True)
    with pytest.raises(DownloadRefused, match="Download 999 not found") as refused:
        with source.open_download(missing):
            pass
    assert "auth_key" not in str(refused.value)
    with pytest.raises(ItemSkipped, match="not bought"):
        source.open_download(_planned(1))
    source.close()


def test_configuration_mistakes_name_the_key(bigstock: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.lightboxes"):
        _source(bigstock, monkeypatch, lightboxes=[])
    with pytest.raises(ConfigError, match=r"sources\[0\]\.size_code"):
        _source(bigstock, monkeypatch, size_code="huge")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.base_url"):
        _source(bigstock, monkeypatch, base_url="http://api.bigstockphoto.com")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.secret_env"):
        _source(bigstock, monkeypatch, secret_file="/run/secrets/bigstock")


def test_sidecars_carry_the_image_details(bigstock: Sandbox, tmp_path: Path) -> None:
    bigstock.bigstock.add_lightbox("Campaign", [1801])
    bigstock.bigstock.set_image(1801, description="Red bicycle on a bridge", keywords="bicycle,bridge,red")
    assert _syncd("sync", config=_config(tmp_path, bigstock, ["Campaign"], budget=1)).code == 0
    _, sidecars = library_files(tmp_path / "library")
    document = json.loads(sidecars[0].read_text())
    assert document["description"] == "Red bicycle on a bridge"
    assert document["keywords"] == ["bicycle", "bridge", "red"]
    assert sidecars[0].name.startswith("1801-red-bicycle-on-a-bridge")
