"""One typed schema for syncd.toml: every option declared once, with its default and meaning.

Validation errors become ``ConfigError`` naming the key (``sources[0].token_env``), so a user
reading the message knows exactly which line to fix. Secrets are never in the file: ``*_env``
names an environment variable and ``*_file`` a file, resolved only when a command needs them.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from syncd.errors import AuthError, ConfigError
from syncd.naming import DEFAULT_TEMPLATE, KeyTemplate
from syncd.redact import remember

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """``"2s"``, ``"15m"``, ``"1h"`` → seconds. A bare number is refused: the unit must be said."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"expected a duration with a unit such as \"30s\", \"15m\" or \"1h\", got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
MediaName = Literal["image", "video", "audio", "sfx", "editorial"]


class Section(BaseModel):
    """Base of every table in the file: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StateConfig(Section):
    """Where syncd keeps its state."""

    url: str = "sqlite:///syncd.db"
    """Any SQLAlchemy URL; SQLite by default, ``postgresql+psycopg://…`` for shared state."""


class ScheduleConfig(Section):
    """When ``syncd run`` starts a pass."""

    cron: str | None = None
    """Crontab expression (5 fields, UTC)."""
    interval: Duration | None = None
    """Or a fixed interval such as ``"15m"``."""

    @model_validator(mode="after")
    def _one_of(self) -> "ScheduleConfig":
        if self.cron is not None and self.interval is not None:
            raise ValueError("set either cron or interval, not both")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron must have 5 fields (minute hour day month weekday), got {self.cron!r}")
        return self


class SyncSettings(Section):
    """How a pass behaves."""

    concurrency: int = Field(4, ge=1, le=64)
    """Assets in flight at once, per process."""
    max_attempts: int = Field(5, ge=1)
    """After this many failed attempts an item stays ``failed`` until ``syncd retry``."""
    max_wait: Duration = 600.0
    """A 429 whose reset is further away than this stops the pass (exit 5)."""
    grace: Duration = 30.0
    """On SIGTERM/SIGINT: time for the items in flight to finish."""


class MetricsConfig(Section):
    """Prometheus metrics."""

    listen: str = "127.0.0.1:9469"
    """``syncd run`` serves /metrics and /healthz here; empty = off."""
    textfile: str = ""
    """One-shot commands write their metrics to this file (node_exporter textfile collector)."""


class SourceBase(Section):
    """What every source has."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Unique; recorded with every item and used in keys."""
    base_url: str
    """The API's base URL."""


class ShutterstockSourceConfig(SourceBase):
    """A Shutterstock account's license history."""

    kind: Literal["shutterstock"]
    base_url: str = "https://api.shutterstock.com"
    token_env: str | None = None
    """Environment variable holding the OAuth token."""
    token_file: Path | None = None
    """Or a file holding it (e.g. a Kubernetes secret mount)."""
    media: list[MediaName] = Field(default_factory=lambda: ["image"], min_length=1)
    """Media types to sync; ``editorial`` covers editorial images and videos."""
    download_hosts: list[str] = Field(default_factory=lambda: ["download.shutterstock.com"])
    """The only hosts (besides the API host) that files are fetched from."""
    relicense: bool = False
    """Re-license what cannot be re-downloaded (spends money)."""
    max_relicenses_per_run: int = Field(0, ge=0)
    """Budget of re-licenses per pass."""
    subscription_id: str = ""
    """Subscription used to re-license."""
    editorial_country: str = Field("USA", pattern=r"^[A-Z]{3}$")
    """ISO 3166 alpha-3 country sent when licensing editorial media."""

    @model_validator(mode="after")
    def _token_source(self) -> "ShutterstockSourceConfig":
        if bool(self.token_env) == bool(self.token_file):
            raise ValueError("set exactly one of token_env or token_file")
        return self


class BigstockSourceConfig(SourceBase):
    """Images collected in Bigstock lightboxes."""

    kind: Literal["bigstock"]
    base_url: str = "https://api.bigstockphoto.com"
    account_id: str
    secret_env: str | None = None
    secret_file: Path | None = None
    lightboxes: list[str] = Field(default_factory=list)
    size_code: str = "l"
    max_purchases_per_run: int = Field(0, ge=0)


SourceConfig = Annotated[ShutterstockSourceConfig | BigstockSourceConfig, Field(discriminator="kind")]


class DestinationBase(Section):
    """What every destination has."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FilesystemDestinationConfig(DestinationBase):
    """A directory tree."""

    kind: Literal["filesystem"]
    path: Path


class S3DestinationConfig(DestinationBase):
    """An S3 bucket or S3-compatible server; credentials from boto3's usual chain."""

    kind: Literal["s3"]
    bucket: str = Field(min_length=3)
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""


class WordpressDestinationConfig(DestinationBase):
    """A WordPress media library (REST API, Application Password)."""

    kind: Literal["wordpress"]
    url: str
    username: str
    password_env: str | None = None
    password_file: Path | None = None


DestinationConfig = Annotated[
    FilesystemDestinationConfig | S3DestinationConfig | WordpressDestinationConfig,
    Field(discriminator="kind"),
]


class NamingConfig(Section):
    """How stored files are named."""

    template: str = DEFAULT_TEMPLATE

    @field_validator("template")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        KeyTemplate(value)  # raises ConfigError naming the field
        return value


class Config(Section):
    """The whole file."""

    state: StateConfig = StateConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    sync: SyncSettings = SyncSettings()
    metrics: MetricsConfig = MetricsConfig()
    sources: list[SourceConfig] = Field(min_length=1)
    destinations: list[DestinationConfig] = Field(min_length=1)
    naming: NamingConfig = NamingConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        for table, entries in (("sources", self.sources), ("destinations", self.destinations)):
            seen: set[str] = set()
            for entry in entries:
                if entry.name in seen:
                    raise ValueError(f"{table}: the name {entry.name!r} is used twice")
                seen.add(entry.name)
        return self

    def source(self, name: str) -> SourceConfig:
        """The source called ``name`` (for ``--source``)."""
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources)
        raise ConfigError(f"no source named {name!r} (configured: {known})", key="--source")

    def destination(self, name: str) -> DestinationConfig:
        """The destination called ``name``."""
        for destination in self.destinations:
            if destination.name == name:
                return destination
        known = ", ".join(d.name for d in self.destinations)
        raise ConfigError(f"no destination named {name!r} (configured: {known})", key="--destination")


NO_CONFIG_HELP = (
    "no configuration file found at {path}.\n"
    "  To see syncd work without an account: syncd demo\n"
    "  To start your own: copy an example from config/ (config/filesystem.toml, config/s3.toml)\n"
    "  to ./syncd.toml, or point to one with --config PATH or $SYNCD_CONFIG."
)


def config_path(explicit: str | None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it (``--config`` or ``$SYNCD_CONFIG``)."""
    if explicit:
        return Path(explicit), True
    from_env = os.environ.get("SYNCD_CONFIG")
    if from_env:
        return Path(from_env), True
    return Path("syncd.toml"), False


def load_config(path: Path) -> Config:
    """Read and validate ``path``; every problem becomes a ``ConfigError`` naming the key."""
    if not path.is_file():
        raise ConfigError(NO_CONFIG_HELP.format(path=path))
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return parse_config(document, origin=str(path))


def parse_config(document: dict[str, Any], origin: str = "config") -> Config:
    """Validate an already-parsed TOML document."""
    try:
        return Config.model_validate(document)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None
    except ValidationError as error:
        raise _config_error(error, origin) from None


def _config_error(error: ValidationError, origin: str) -> ConfigError:
    problems = []
    first_key = None
    for issue in error.errors():
        key = _dotted(issue["loc"])
        first_key = first_key or key
        message = issue["msg"]
        if issue["type"] == "extra_forbidden":
            message = "unknown key"
        elif issue["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{key}: {message}" if key else message)
    config_error = ConfigError(f"invalid configuration in {origin}:\n  " + "\n  ".join(problems))
    config_error.key = first_key
    return config_error


def _dotted(location: tuple[Any, ...]) -> str:
    """``("sources", 0, "shutterstock", "tokn_env")`` → ``sources[0].tokn_env``."""
    parts: list[str] = []
    previous_was_index = False
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
            previous_was_index = True
            continue
        if previous_was_index and part in {"shutterstock", "bigstock", "filesystem", "s3", "wordpress"}:
            previous_was_index = False
            continue  # pydantic's discriminator tag, not a key in the file
        previous_was_index = False
        parts.append(f".{part}" if parts else str(part))
    return "".join(parts)


def read_secret(env: str | None, file: Path | None, what: str) -> str:
    """Resolve a secret from ``*_env`` or ``*_file``; never puts the value in a message."""
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise AuthError(f"{what}: the environment variable {env} is not set or is empty")
        return remember(value)
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise AuthError(f"{what}: cannot read the file {file}: {error.strerror}") from None
        if not value:
            raise AuthError(f"{what}: the file {file} is empty")
        return remember(value)
    raise AuthError(f"{what}: no secret configured")
