"""Test helpers: write a config file and run the real `syncd` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_ENV = "SYNCD_TEST_TOKEN"
SIDECAR_SCHEMA = json.loads((Path(__file__).parent.parent / "syncd" / "sidecar.schema.json").read_text())


def toml_value(value: Any) -> str:
    """A Python value as TOML (enough for our configs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_config(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` (tables and arrays of tables) as a TOML file."""
    lines: list[str] = []
    for table, body in document.items():
        if isinstance(body, list):
            for entry in body:
                lines.append(f"[[{table}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
                lines.append("")
        else:
            lines.append(f"[{table}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in body.items()]
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def sandbox_config(tmp_path: Path, sandbox_url: str, state_url: str | None = None,
                   destinations: list[dict[str, Any]] | None = None, **sections: Any) -> Path:
    """A config syncing the sandbox's images into tmp_path/library (or the given destinations)."""
    source = {"name": "shutterstock", "kind": "shutterstock", "base_url": sandbox_url,
              "token_env": TOKEN_ENV, "media": ["image"], "download_hosts": []}
    source.update(sections.pop("source", {}))
    document: dict[str, Any] = {
        "state": {"url": state_url or f"sqlite:///{tmp_path / 'state.db'}"},
        "sync": {"concurrency": 4, "max_wait": "30s", **sections.pop("sync", {})},
        "sources": [source],
        "destinations": destinations or [{"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")}],
    }
    document.update(sections)
    return write_config(tmp_path / "syncd.toml", document)


@dataclass
class Result:
    """A finished `syncd` process."""

    code: int
    stdout: str
    stderr: str


def run_syncd(*args: str, config: Path | None = None, env: dict[str, str] | None = None,
              token: str | None = "sandbox-token", cwd: Path | None = None, timeout: float = 120) -> Result:
    """Run `syncd [--config config] args…` as a user would; returns its exit code and output."""
    environment = {k: v for k, v in os.environ.items() if k != TOKEN_ENV and k != "SYNCD_CONFIG"}
    if token is not None:
        environment[TOKEN_ENV] = token
    environment.update(env or {})
    command = [sys.executable, "-m", "syncd.cli", "--log-format", "json"]
    if config is not None:
        command += ["--config", str(config)]
    process = subprocess.run(command + list(args), capture_output=True, text=True, env=environment,
                             cwd=cwd, timeout=timeout)
    return Result(process.returncode, process.stdout, process.stderr)


def library_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(asset files, sidecars) under a filesystem destination."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    sidecars = [p for p in files if p.name.endswith(".json")]
    assets = [p for p in files if not p.name.endswith(".json")]
    return assets, sidecars


def sidecar_documents(root: Path) -> list[dict[str, Any]]:
    """Every sidecar under a filesystem destination, each validated against the published JSON Schema."""
    import jsonschema

    documents = [json.loads(p.read_text()) for p in library_files(root)[1]]
    for document in documents:
        jsonschema.validate(document, SIDECAR_SCHEMA)
    return documents


def lose_state(directory: Path) -> None:
    """Delete the SQLite state database with its WAL files, as a lost volume would."""
    for suffix in ("", "-wal", "-shm"):
        (directory / f"state.db{suffix}").unlink(missing_ok=True)
