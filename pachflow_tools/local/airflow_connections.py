"""Put the local stack's connections into Airflow's metadata database, where the UI shows and edits them.

Idempotent and edit-preserving: a connection is added when missing and updated only while it still
holds what this module wrote last time (kept in a record file next to the database); a connection a
user changed in the UI or with `airflow connections` is left as it is.

Run as ``python -m pachflow_tools.local.airflow_connections CONNECTIONS_JSON RECORD_FILE`` in the
Airflow environment of the stack (it reads the database that environment configures); prints
``{conn_id: outcome}`` as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ADDED, UPDATED, UNCHANGED, KEPT = "added", "updated", "unchanged", "kept (edited in Airflow)"
FIELDS = ("conn_type", "host", "port", "schema", "login", "password", "extra")


def _normal(fields: dict) -> dict:
    """Comparable form of a connection: every field present, ``extra`` as a dict, blanks as None."""
    out = {name: fields.get(name) or None for name in FIELDS}
    extra = out["extra"]
    out["extra"] = json.loads(extra) if isinstance(extra, str) else (extra or None)
    return out


def _stored(row) -> dict:
    return _normal({name: getattr(row, name) for name in FIELDS})


def sync_connections(wanted: dict[str, dict], record_file: Path) -> dict[str, str]:
    """Make the database hold ``wanted`` ({conn_id: Airflow JSON connection}) without undoing edits."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    last_written = json.loads(record_file.read_text()) if record_file.exists() else {}
    outcome: dict[str, str] = {}
    with create_session() as session:
        for conn_id, spec in wanted.items():
            target = _normal(spec)
            row = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
            if row is None:
                row = Connection(conn_id=conn_id)
                session.add(row)
                outcome[conn_id] = ADDED
            elif _stored(row) == target:
                outcome[conn_id] = UNCHANGED
                continue
            elif last_written.get(conn_id) == _stored(row):
                outcome[conn_id] = UPDATED
            else:
                outcome[conn_id] = KEPT
                continue
            for name in ("conn_type", "host", "port", "schema", "login", "password"):
                setattr(row, name, target[name])
            row.set_extra(json.dumps(target["extra"]) if target["extra"] else None)
    written = {conn_id: _normal(wanted[conn_id]) for conn_id, state in outcome.items() if state != KEPT}
    record_file.parent.mkdir(parents=True, exist_ok=True)
    record_file.write_text(json.dumps({**last_written, **written}, indent=2) + "\n")
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pachflow_tools.local.airflow_connections CONNECTIONS_JSON RECORD_FILE")
        return 2
    print(json.dumps(sync_connections(json.loads(args[0]), Path(args[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
