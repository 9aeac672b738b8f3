"""``syncd status``: one stable document (schema ``syncd.status/1``) and its human rendering."""

from __future__ import annotations

import json
from typing import Any

from syncd.sidecar import iso_utc
from syncd.state import StateStore

SCHEMA = "syncd.status/1"


def collect_status(store: StateStore) -> dict[str, Any]:
    """Counts per state, problem items with reasons, frontiers and the last runs."""
    return {
        "schema": SCHEMA,
        "counts": store.status_counts(),
        "problems": [
            {"source": i.source, "media_type": i.media_type, "media_id": i.media_id, "license_id": i.license_id,
             "state": "queued" if i.status not in ("failed", "skipped") else i.status, "reason": i.reason,
             "attempts": i.attempts,
             "next_attempt_at": iso_utc(i.next_attempt_at) if i.next_attempt_at else None}
            for i in store.problem_items()
        ],
        "frontiers": [
            {"source": f.source, "media_type": f.media_type, "license_id": f.license_id,
             "licensed_at": iso_utc(f.licensed_at)}
            for f in store.frontiers()
        ],
        "workers": [
            {"owner": w.owner, "host": w.host, "pid": w.pid, "items_in_hand": w.items_in_hand,
             "started_at": iso_utc(w.started_at), "last_heartbeat": iso_utc(w.heartbeat_at),
             "stopped_at": iso_utc(w.stopped_at) if w.stopped_at else None}
            for w in store.workers()
        ],
        "expired_leases": store.expired_leases(),
        "runs": [
            {"id": r.id, "command": r.command, "started_at": iso_utc(r.started_at),
             "finished_at": iso_utc(r.finished_at) if r.finished_at else None, "outcome": r.outcome,
             "exit_code": r.exit_code, "counts": json.loads(r.counts or "{}"), "message": r.message}
            for r in store.recent_runs()
        ],
    }


def render_status(report: dict[str, Any]) -> str:
    """The report for a person."""
    counts = report["counts"]
    lines = [f"synced {counts['synced']}   queued {counts['queued']}   failed {counts['failed']}   skipped {counts['skipped']}"]
    if report["problems"]:
        lines.append("")
        lines.append("needing attention:")
        for problem in report["problems"]:
            lines.append(f"  {problem['state']:<7} {problem['source']} {problem['media_type']} {problem['media_id']} "
                         f"(license {problem['license_id']}, attempts {problem['attempts']}): {problem['reason']}")
    if report["frontiers"]:
        lines.append("")
        lines.append("frontiers:")
        for frontier in report["frontiers"]:
            lines.append(f"  {frontier['source']} {frontier['media_type']}: {frontier['license_id']} ({frontier['licensed_at']})")
    if report["workers"]:
        lines.append("")
        lines.append("workers:")
        for w in report["workers"]:
            state = f"stopped {w['stopped_at']}" if w["stopped_at"] else f"last heartbeat {w['last_heartbeat']}"
            lines.append(f"  {w['host']} pid {w['pid']}: {w['items_in_hand']} item(s) in hand, {state}")
    if report["expired_leases"]:
        lines.append(f"  {report['expired_leases']} item(s) held by a process that stopped renewing; "
                     "they are taken over by the next worker or pass")
    if report["runs"]:
        lines.append("")
        lines.append("last runs:")
        for run in report["runs"]:
            lines.append(f"  #{run['id']} {run['command']} {run['started_at']} → {run['outcome']} "
                         f"(exit {run['exit_code']}) {json.dumps(run['counts'])}")
    return "\n".join(lines)
