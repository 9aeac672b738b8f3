"""Shared fixtures: the sandbox, a real S3 server (moto), and state on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from tests.fixtures.s3 import s3_bucket, s3_server  # noqa: F401
from tests.fixtures.s3_faults import faulty_s3  # noqa: F401
from tests.fixtures.sandbox import sandbox  # noqa: F401

PG_ADMIN_URL = os.environ.get("SYNCD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the machine's server, dropped afterwards."""
    name = f"syncd_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty state database: SQLite in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL state database (for what only a shared state can do: workers)."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A SQLite state URL in tmp_path (for tests where the backend does not matter)."""
    return f"sqlite:///{tmp_path / 'state.db'}"
