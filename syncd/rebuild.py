"""``syncd rebuild-state``: recreate lost state from the sidecars at a destination.

Every license a sidecar lists becomes a ``synced`` item and the asset a stored row, so nothing
is downloaded or licensed again. No frontier is set: the next sync walks the whole history
once (known licenses cost nothing) and so also finds licenses that were never stored.
"""

from __future__ import annotations

from datetime import datetime

from syncd import sidecar
from syncd.destinations.base import Destination
from syncd.models import SYNCED
from syncd.records import LicenseRecord
from syncd.state import StateStore


def rebuild_from_sidecars(store: StateStore, destination: Destination) -> tuple[int, int]:
    """Returns (assets, licenses) recorded."""
    assets = licenses = 0
    for key, raw in destination.iter_sidecars():
        document = sidecar.decode(raw)
        if document is None:
            continue
        records = [_record(document, entry) for entry in document.get("licenses") or [] if entry.get("id")]
        if not records:
            continue
        store.record_discovered(records)
        ids = [r.license_id for r in records]
        store.set_status(store.item_ids(document["source"], ids), SYNCED)
        file_entry = document.get("file") or {}
        sizes = [r.size for r in records]
        store.record_stored(source=document["source"], media_type=document["media_type"],
                            media_id=str(document["media_id"]), destination=destination.name,
                            key=file_entry.get("key") or key, sha256=file_entry.get("sha256") or "",
                            size_bytes=int(file_entry.get("bytes") or 0), size=_largest(sizes), license_ids=ids)
        assets += 1
        licenses += len(records)
    return assets, licenses


def _record(document: dict, entry: dict) -> LicenseRecord:
    return LicenseRecord(
        source=document["source"], media_type=document["media_type"], license_id=str(entry["id"]),
        media_id=str(document["media_id"]),
        licensed_at=datetime.fromisoformat(str(entry.get("licensed_at")).replace("Z", "+00:00")),
        license=entry.get("license"), size=entry.get("size"), format=entry.get("format"),
        subscription_id=entry.get("subscription_id"), username=entry.get("username"), is_downloadable=None,
        record={"rebuilt_from": "sidecar"},
    )


def _largest(sizes: list[str | None]) -> str | None:
    order = ("small", "web", "medium", "sd", "huge", "hd", "supersize", "4k", "vector", "original")
    known = [s for s in sizes if s in order]
    return max(known, key=order.index) if known else (sizes[0] if sizes else None)
