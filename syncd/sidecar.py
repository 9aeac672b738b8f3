"""The sidecar document stored next to every asset (``KEY.json``, schema ``syncd.asset/1``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from syncd.models import Item

SCHEMA = "syncd.asset/1"

# Fields particular to a media type, copied from the details under a key named after the type.
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "image": ("aspect", "image_type", "is_illustration", "is_adult", "has_model_release", "model_released"),
    "video": ("duration", "aspect", "aspect_ratio", "is_adult", "has_model_release"),
    "audio": ("title", "artists", "album", "genres", "moods", "instruments", "bpm", "duration", "is_instrumental"),
    "sfx": ("title", "duration", "artist"),
    "editorial_image": ("title", "byline", "caption", "date_taken", "supplier_code"),
    "editorial_video": ("title", "byline", "caption", "date_taken", "supplier_code"),
}


def iso_utc(moment: datetime) -> str:
    """A naive-UTC or aware datetime as ``2018-08-31T18:27:10Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


PURCHASE_FIELDS = ("download_id", "size_code", "purchased_at")  # kept from a purchase; never a URL or key


def license_entry(item: Item) -> dict[str, Any]:
    """One entry of the sidecar's ``licenses`` list (with what syncd bought it for, if it did)."""
    entry: dict[str, Any] = {
        "id": item.license_id,
        "license": item.license,
        "subscription_id": item.subscription_id,
        "username": item.username,
        "licensed_at": iso_utc(item.licensed_at),
        "size": item.size,
        "format": item.format,
    }
    if item.relicensed_from:
        entry["replaces"] = item.relicensed_from
        kept = json.loads(item.record or "{}")
        purchase = {name: kept[name] for name in PURCHASE_FIELDS if name in kept}
        if purchase:
            entry["purchase"] = purchase
    return entry


def build_sidecar(
    *,
    source: str,
    media_type: str,
    media_id: str,
    licenses: Sequence[Item],
    details: dict[str, Any] | None,
    file: dict[str, Any],
    synced_at: datetime,
    companions: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole sidecar document of one asset.

    ``companions`` are files stored next to the asset (an audio track's ``shorts_loops_stems``
    archive), each a file entry like ``file``, listed under the media type's key.
    """
    details = details or {}
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "source": source,
        "media_type": media_type,
        "media_id": media_id,
        "licenses": [license_entry(item) for item in sorted(licenses, key=lambda i: (i.licensed_at, i.license_id))],
        "description": details.get("description") or "",
        "keywords": [str(k) for k in details.get("keywords") or []],
        "categories": [c.get("name") if isinstance(c, dict) else str(c) for c in details.get("categories") or []],
        "contributor": str((details.get("contributor") or {}).get("id") or "") or None,
        "original_filename": details.get("original_filename"),
        "editorial": media_type.startswith("editorial"),
        "file": file,
        "synced_at": iso_utc(synced_at),
    }
    particular = {name: details[name] for name in TYPE_FIELDS.get(media_type, ()) if name in details}
    document[media_type] = particular | (companions or {})
    return document


def companions_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The companion file entries a sidecar lists (see ``build_sidecar``)."""
    particular = document.get(document.get("media_type") or "") or {}
    return {name: entry for name, entry in particular.items()
            if isinstance(entry, dict) and {"key", "bytes", "sha256"} <= entry.keys()}


def encode(document: dict[str, Any]) -> bytes:
    """Stable, human-readable JSON bytes."""
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False).encode("utf-8") + b"\n"


def decode(raw: bytes | None) -> dict[str, Any] | None:
    """Parse a sidecar; None if missing, unreadable, or not ours."""
    if not raw:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        return None
    return document
