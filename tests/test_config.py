"""The configuration schema: examples load, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load_config, parse_config, parse_duration, read_secret
from syncd.errors import AuthError, ConfigError

EXAMPLES = sorted((Path(__file__).parent.parent / "config").glob("*.toml"))


def minimal(**extra: object) -> dict:
    document = {
        "sources": [{"name": "s", "kind": "shutterstock", "token_env": "T"}],
        "destinations": [{"name": "d", "kind": "filesystem", "path": "/tmp/x"}],
    }
    document.update(extra)
    return document


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.sources and config.destinations


def test_there_are_examples_for_filesystem_s3_and_sandbox() -> None:
    assert {p.stem for p in EXAMPLES} >= {"filesystem", "s3", "sandbox"}


def test_defaults_follow_the_contract() -> None:
    config = parse_config(minimal())
    assert config.state.url == "sqlite:///syncd.db"
    assert config.sync.concurrency == 4
    assert config.sync.max_wait == 600
    assert config.sync.grace == 30
    assert config.sources[0].download_hosts == ["download.shutterstock.com"]
    assert config.sources[0].media == ["image"]
    assert config.sources[0].relicense is False
    assert config.naming.template == "{source}/{media_type}/{media_id}-{slug}.{ext}"


@pytest.mark.parametrize("document, key", [
    (minimal(colour="red"), "colour"),
    (minimal(sync={"concurency": 3}), "sync.concurency"),
    (minimal(sync={"concurrency": 0}), "sync.concurrency"),
    (minimal(sync={"grace": 30}), "sync.grace"),
    ({**minimal(), "sources": [{"name": "s", "kind": "shutterstock", "token_env": "T", "mediaa": []}]}, "sources[0].mediaa"),
    ({**minimal(), "sources": [{"name": "s", "kind": "shutterstock", "token_env": "T", "media": ["gif"]}]}, "sources[0].media"),
    ({**minimal(), "destinations": [{"name": "d", "kind": "s3"}]}, "destinations[0].bucket"),
    ({**minimal(), "destinations": [{"name": "d", "kind": "ftp"}]}, "destinations[0]"),
    (minimal(naming={"template": "{nope}.{ext}"}), "naming.template"),
    (minimal(schedule={"cron": "* *"}), "schedule"),
])
def test_mistakes_name_the_key(document: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert key in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_secret_in_the_file_is_refused() -> None:
    document = minimal()
    document["sources"][0]["token"] = "abc"
    with pytest.raises(ConfigError, match="sources\\[0\\].token"):
        parse_config(document)


def test_exactly_one_token_source() -> None:
    document = minimal()
    document["sources"][0]["token_file"] = "/run/secrets/t"
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config(document)


def test_duplicate_names_are_refused() -> None:
    document = minimal()
    document["destinations"] = document["destinations"] * 2
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(document)


@pytest.mark.parametrize("text, seconds", [("2s", 2), ("15m", 900), ("1h", 3600), ("500ms", 0.5), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_secrets_name_the_variable_or_file_never_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCD_NOPE", raising=False)
    with pytest.raises(AuthError, match="SYNCD_NOPE"):
        read_secret("SYNCD_NOPE", None, "token")
    monkeypatch.setenv("SYNCD_EMPTY", "  ")
    with pytest.raises(AuthError, match="SYNCD_EMPTY"):
        read_secret("SYNCD_EMPTY", None, "token")
    with pytest.raises(AuthError, match="missing-file"):
        read_secret(None, tmp_path / "missing-file", "token")
    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    assert read_secret(None, secret, "token") == "s3cr3t"


def test_the_contract_example_is_valid() -> None:
    """The contract's full example (both agencies, every table) is accepted as written."""
    load_config(Path(__file__).parent / "data" / "contract-example.toml")
