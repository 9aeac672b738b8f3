"""Schema version 1: items, stored assets, licensing intents, destination inventory, frontiers, backfill cursors, runs, locks.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("media_type", sa.String, nullable=False),
        sa.Column("license_id", sa.String, nullable=False),
        sa.Column("media_id", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("reason", sa.String),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("licensed_at", sa.DateTime, nullable=False),
        sa.Column("license", sa.String),
        sa.Column("size", sa.String),
        sa.Column("format", sa.String),
        sa.Column("subscription_id", sa.String),
        sa.Column("username", sa.String),
        sa.Column("is_downloadable", sa.Boolean),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("discovered_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("lease_owner", sa.String),
        sa.Column("lease_expires_at", sa.DateTime),
        sa.Column("claims", sa.Integer, nullable=False, server_default="0"),
        sa.Column("relicensed_from", sa.String),
        sa.UniqueConstraint("source", "license_id", name="uq_items_source_license"),
    )
    op.create_index("ix_items_status", "items", ["status", "next_attempt_at"])
    op.create_index("ix_items_media", "items", ["source", "media_type", "media_id"])
    op.create_table(
        "stored_assets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("media_type", sa.String, nullable=False),
        sa.Column("media_id", sa.String, nullable=False),
        sa.Column("destination", sa.String, nullable=False),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("sha256", sa.String, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("size", sa.String),
        sa.Column("license_ids", sa.Text, nullable=False),
        sa.Column("stored_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("source", "media_type", "media_id", "destination", name="uq_stored_asset"),
    )
    op.create_table(
        "licensing_intents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("media_type", sa.String, nullable=False),
        sa.Column("media_id", sa.String, nullable=False),
        sa.Column("license_id", sa.String, nullable=False),
        sa.Column("subscription_id", sa.String),
        sa.Column("size", sa.String),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("new_license_id", sa.String),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("resolved_at", sa.DateTime),
    )
    op.create_index(
        "uq_open_intent", "licensing_intents", ["source", "media_type", "media_id"], unique=True,
        sqlite_where=sa.text("status IN ('pending', 'unknown')"),
        postgresql_where=sa.text("status IN ('pending', 'unknown')"),
    )
    op.create_table(
        "workers",
        sa.Column("owner", sa.String, primary_key=True),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("items_in_hand", sa.Integer, nullable=False),
        sa.Column("stopped_at", sa.DateTime),
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("paused_until", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "destination_inventory",
        sa.Column("destination", sa.String, primary_key=True),
        sa.Column("complete_since", sa.DateTime, nullable=False),
    )
    op.create_table(
        "frontiers",
        sa.Column("source", sa.String, primary_key=True),
        sa.Column("media_type", sa.String, primary_key=True),
        sa.Column("license_id", sa.String, nullable=False),
        sa.Column("licensed_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "backfill_cursors",
        sa.Column("source", sa.String, primary_key=True),
        sa.Column("media_type", sa.String, primary_key=True),
        sa.Column("window", sa.String, primary_key=True),
        sa.Column("oldest_licensed_at", sa.DateTime),
        sa.Column("completed_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("command", sa.String, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("token", sa.String, nullable=False),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("command", sa.String, nullable=False),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("locks", "runs", "backfill_cursors", "frontiers", "destination_inventory", "licensing_intents",
                  "workers", "rate_limits",
                  "stored_assets", "items"):
        op.drop_table(table)
