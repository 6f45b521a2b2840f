"""Pipeline secrets: pachd's CreateSecret/InspectSecret/ListSecret/DeleteSecret without Kubernetes.

pachd turns ``CreateSecretRequest.file`` (a Kubernetes Secret manifest as JSON) into a Kubernetes
secret; pachd-lite keeps the name, type and key/value map in its database instead. As in pachd:
the manifest must be JSON (pachctl converts YAML client-side), a ``suite`` label other than
"pachyderm" is refused, creating an existing name fails (Kubernetes' Create, not an upsert),
and Inspect/List return only name, type and creation time, never the values.

Values are registered with the server's redactor (``ctx.redact.add``) when created and when the
server starts, so they are masked in logs, GetLogs, job reasons and errors. Nothing here logs
a value or puts one in an exception message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from pachd_lite.errors import AlreadyExists, InvalidArgument, NotFound
from pachd_lite.pfs.model import PfsContext

# Kubernetes object names (DNS subdomain) and Secret data keys.
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_NAME = 253


@dataclass(frozen=True)
class SecretRecord:
    """What InspectSecret shows: no values."""

    name: str
    type: str
    created_at: float


def init(ctx: PfsContext) -> None:
    """Register every stored value with the redactor (at server start)."""
    with ctx.db.read() as conn:
        rows = conn.execute("SELECT data FROM secrets").fetchall()
    for row in rows:
        _register(ctx, json.loads(row[0]).values())


def _register(ctx: PfsContext, values: Any) -> None:
    add = getattr(ctx.redact, "add", None)
    if add is not None:
        add(list(values))


def parse_manifest(file: bytes) -> tuple[str, str, dict[str, str]]:
    """(name, type, data) of a Kubernetes Secret manifest (JSON); errors never quote values."""
    try:
        manifest = json.loads(file.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        # pachd: "failed to unmarshal secret"; the position only, not the text (it may be a value)
        where = f" (line {e.lineno}, column {e.colno})" if isinstance(e, json.JSONDecodeError) else ""
        raise InvalidArgument(
            f"failed to unmarshal secret: the file must be a Kubernetes Secret manifest in JSON{where}"
        ) from None
    if not isinstance(manifest, dict):
        raise InvalidArgument("failed to unmarshal secret: the manifest must be a JSON object")
    kind = manifest.get("kind", "Secret")
    if kind != "Secret":
        raise InvalidArgument(f'failed to unmarshal secret: kind is "{kind}", expected "Secret"')
    meta = manifest.get("metadata")
    if not isinstance(meta, dict):
        raise InvalidArgument("invalid secret: metadata.name is required")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("invalid secret: metadata.name is required")
    if len(name) > MAX_NAME or not _NAME_RE.match(name):
        raise InvalidArgument(
            f'invalid secret: metadata.name "{name}" must be a lowercase DNS subdomain '
            "(letters, digits, '-', '.'; at most 253 characters)"
        )
    labels = meta.get("labels") or {}
    if isinstance(labels, dict) and labels.get("suite") not in (None, "", "pachyderm"):
        raise InvalidArgument(f"invalid suite label set on secret: suite={labels['suite']}")
    secret_type = manifest.get("type") or "Opaque"
    if not isinstance(secret_type, str):
        raise InvalidArgument("invalid secret: type must be a string")
    data: dict[str, str] = {}
    for field in ("data", "stringData"):  # stringData wins, as in Kubernetes
        section = manifest.get(field) or {}
        if not isinstance(section, dict):
            raise InvalidArgument(f"invalid secret {name}: {field} must be a JSON object")
        for key, raw in section.items():
            if not _KEY_RE.match(key) or len(key) > MAX_NAME:
                raise InvalidArgument(
                    f'invalid secret {name}: key "{key}" may only hold letters, digits, "-", "_" and "."'
                )
            if not isinstance(raw, str):
                raise InvalidArgument(f'invalid secret {name}: {field}["{key}"] must be a string')
            data[key] = raw if field == "stringData" else _b64(name, key, raw)
    return name, secret_type, data


def _b64(name: str, key: str, raw: str) -> str:
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidArgument(
            f'invalid secret {name}: data["{key}"] must be base64 of UTF-8 text (use stringData for plain text)'
        ) from None


def create_secret(ctx: PfsContext, file: bytes) -> SecretRecord:
    """Store a secret from its manifest; AlreadyExists if the name is taken (delete it first)."""
    name, secret_type, data = parse_manifest(file)
    _register(ctx, data.values())  # before anything could echo it
    now = time.time()
    with ctx.db.tx() as conn:
        if conn.execute("SELECT 1 FROM secrets WHERE name = ?", (name,)).fetchone():
            raise AlreadyExists(f'failed to create secret: secrets "{name}" already exists')
        conn.execute(
            "INSERT INTO secrets(name, type, data, created_at) VALUES (?, ?, ?, ?)",
            (name, secret_type, json.dumps(data), now),
        )
    return SecretRecord(name, secret_type, now)


def _require(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    if not name:
        raise InvalidArgument("a secret name is required")
    row = conn.execute("SELECT * FROM secrets WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f'secret "{name}" not found')
    return row


def inspect_secret(ctx: PfsContext, name: str) -> SecretRecord:
    with ctx.db.read() as conn:
        row = _require(conn, name)
    return SecretRecord(row["name"], row["type"], row["created_at"])


def list_secrets(ctx: PfsContext) -> list[SecretRecord]:
    with ctx.db.read() as conn:
        rows = conn.execute("SELECT name, type, created_at FROM secrets ORDER BY name").fetchall()
    return [SecretRecord(r["name"], r["type"], r["created_at"]) for r in rows]


def delete_secret(ctx: PfsContext, name: str) -> None:
    """Delete a secret. Like Kubernetes, pipelines that use it are not checked: their next job fails."""
    with ctx.db.tx() as conn:
        _require(conn, name)
        conn.execute("DELETE FROM secrets WHERE name = ?", (name,))


def check_refs(conn: sqlite3.Connection, refs: list[tuple[str, str, str]]) -> None:
    """Each (field path, secret name, key) must exist; NotFound names the secret/key and the field."""
    for path, name, key in refs:
        row = conn.execute("SELECT data FROM secrets WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f'{path}.name: secret "{name}" not found (create it with CreateSecret first)')
        if key not in json.loads(row[0]):
            raise NotFound(f'{path}.key: secret "{name}" has no key "{key}"')


def resolve_env(ctx: PfsContext, mounts: list[Any]) -> dict[str, str]:
    """``{env_var: value}`` for a spec's ``transform.secrets``; NotFound if one went missing."""
    refs = [(f"transform.secrets[{i}]", m.name, m.key) for i, m in enumerate(mounts)]
    env: dict[str, str] = {}
    with ctx.db.read() as conn:
        check_refs(conn, refs)
        for m in mounts:
            row = conn.execute("SELECT data FROM secrets WHERE name = ?", (m.name,)).fetchone()
            env[m.env_var] = json.loads(row[0])[m.key]
    return env
