"""Every exit code of the contract, produced the way a user meets it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from syncd.sandbox import FaultRule, Sandbox
from syncd.state import StateStore
from tests.helpers import run_syncd, sandbox_config


def test_0_when_everything_synced_and_when_nothing_is_new(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
    assert run_syncd("sync", config=config).code == 0


def test_1_when_items_fail_and_they_stay_queued(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.faults.add(FaultRule(path=r"^/download/", kind="status", status=500, times=-1))
    config = sandbox_config(tmp_path, sandbox.url)
    result = run_syncd("sync", config=config)
    assert result.code == 1
    assert "retried on the next run" in result.stderr
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.status_counts()["queued"] > 0
    sandbox.faults.clear()
    assert run_syncd("sync", config=config).code == 0
    assert store.status_counts()["queued"] == 0


def test_2_without_a_config_file_explains_how_to_start(tmp_path: Path) -> None:
    result = run_syncd("sync", cwd=tmp_path)
    assert result.code == 2
    assert "syncd demo" in result.stderr and "config/" in result.stderr


def test_2_for_a_missing_file_named_explicitly(tmp_path: Path) -> None:
    result = run_syncd("sync", config=tmp_path / "nope.toml")
    assert result.code == 2
    assert "nope.toml" in result.stderr


def test_2_for_an_unknown_key_naming_it(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url, source={"tokn_env": "X"})
    result = run_syncd("sync", config=config)
    assert result.code == 2
    assert "sources[0].tokn_env" in result.stderr


def test_2_for_an_unknown_template_field(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url, naming={"template": "{media_id}-{colour}.{ext}"})
    result = run_syncd("sync", config=config)
    assert result.code == 2
    assert "naming.template" in result.stderr and "colour" in result.stderr


def test_2_for_a_bad_duration(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url, sync={"max_wait": "10"})
    result = run_syncd("sync", config=config)
    assert result.code == 2
    assert "sync.max_wait" in result.stderr


def test_3_when_the_token_variable_is_unset_naming_it(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    result = run_syncd("sync", config=config, token=None)
    assert result.code == 3
    assert "SYNCD_TEST_TOKEN" in result.stderr


def test_3_when_the_token_file_is_missing_naming_it(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url, source={"token_env": "", "token_file": str(tmp_path / "secret")})
    result = run_syncd("sync", config=config)
    assert result.code == 3
    assert str(tmp_path / "secret") in result.stderr


def test_3_when_the_token_is_refused_without_printing_it(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    result = run_syncd("sync", config=config, token="revoked-token-value")
    assert result.code == 3
    assert "401" in result.stderr and "SYNCD_TEST_TOKEN" in result.stderr
    assert "revoked-token-value" not in result.stderr + result.stdout


def test_3_when_the_upstream_is_unreachable(tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, "http://127.0.0.1:9")  # nothing listens on the discard port
    result = run_syncd("sync", config=config)
    assert result.code == 3
    assert "127.0.0.1" in result.stderr


def test_4_when_another_run_holds_the_lock_naming_the_holder(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from syncd.state import StateStore
        with StateStore("sqlite:///{tmp_path / 'state.db'}").lock("sync"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = run_syncd("sync", config=config)
        assert result.code == 4
        assert f"pid {holder.pid}" in result.stderr and "since" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    # A holder killed with SIGKILL leaves its lease behind; the next run recovers it by itself.
    assert run_syncd("sync", config=config).code == 0


def test_5_when_a_429_resets_later_than_max_wait(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", kind="429", reset_in=3600, times=-1))
    config = sandbox_config(tmp_path, sandbox.url, sync={"max_wait": "2s"})
    started = time.monotonic()
    result = run_syncd("sync", config=config)
    assert result.code == 5
    assert time.monotonic() - started < 30
    assert "max_wait" in result.stderr


def test_a_short_429_is_waited_out(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", kind="429", reset_in=1.0, times=1))
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
