"""The datum meta a job writes into its pipeline's ``.meta`` commit, laid out as pachd's worker does.

Per datum id (every datum of the job: processed, failed, recovered and skipped):

- ``/meta/<id>/meta``: the datum's meta as protobuf JSON (pachd's ``datum.Meta``): ``job``,
  ``inputs`` (each ``{fileInfo, name, branch, joinOn, groupBy, lazy, emptyFiles, ...}``), ``hash``,
  ``state`` (``PROCESSED`` is the zero value and left out, as protojson does; ``FAILED``,
  ``RECOVERED``) and ``reason``. A skipped datum keeps the meta of the job that processed it
  (its ``job`` is that job), as pachd keeps the parent's meta. Not written: ``stats`` (pachd-lite
  keeps no per-datum timings), ``index``, ``imageId``.
- ``/pfs/<id>/<input name>/<path>``: the datum's input files, ``/pfs/<id>/out/<path>``: what it
  wrote to /pfs/out (processed and skipped datums). pachd also uploads a failed datum's /pfs/out and
  the datum's ``.env``; pachd-lite keeps neither (the env carries secrets).

Input and output files refer to blobs already stored, so only the meta JSON is new data, written
with one filesystem sync for the whole job (not one fsync per datum); identical meta (a datum
skipped again) is the same blob.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable

from pachyderm_sdk.api import pps

from pachd_lite.errors import NotFound
from pachd_lite.pfs.layers import Entry
from pachd_lite.pfs.model import PfsContext
from pachd_lite.pps import datum_records, jobs

_STATE = {int(pps.DatumState.FAILED): "FAILED", int(pps.DatumState.RECOVERED): "RECOVERED"}


class InputFiles:
    """A datum input's files (blob entries) from the job's input commit snapshots."""

    def __init__(self, input_rows: Iterable[sqlite3.Row], snaps: dict) -> None:
        self._snap = {}
        for r in input_rows:
            self._snap[(r["repo_project"], r["repo_name"], r["commit_set"])] = snaps[r["id"]]

    def entries(self, inp: dict) -> list[Entry]:
        snap = self._snap.get((inp.get("project") or "default", inp["repo"], inp["commit"]))
        if snap is None:
            return []
        try:
            items = snap.walk(inp["path"])
        except NotFound:  # the path is not in the snapshot
            return []
        return [Entry(i.path, i.blob, i.size_bytes) for i in items if not i.is_dir]


def _project(name: str) -> dict:
    return {"name": name or "default"}


def _file_info(inp: dict) -> dict:
    """pfs_v2.FileInfo as protojson (uint64 as a string, bytes as base64), written by hand:
    betterproto's to_dict costs milliseconds per datum."""
    repo = {"name": inp["repo"], "type": "user", "project": _project(inp.get("project", ""))}
    info: dict = {
        "file": {"commit": {"repo": repo, "id": inp["commit"]}, "path": inp["path"]},
        "fileType": "DIR" if inp.get("is_dir") else "FILE",
    }
    if inp.get("size"):
        info["sizeBytes"] = str(int(inp["size"]))
    if inp.get("hash"):
        info["hash"] = base64.b64encode(bytes.fromhex(inp["hash"])).decode()
    return info


def meta_json(project: str, pipeline: str, row: sqlite3.Row, datum_inputs: list[dict]) -> bytes:
    """pachd's ``datum.Meta`` for one datum record (its ``inputs`` column parsed), as protojson
    (camelCase, zero values left out)."""
    job = {"pipeline": {"project": _project(project), "name": pipeline}, "id": row["origin_job"]}
    inputs = []
    for inp in datum_inputs:
        item = {"fileInfo": _file_info(inp), "name": inp["name"], "branch": inp.get("branch", "")}
        inputs.append({k: v for k, v in item.items() if v})
    meta: dict = {"job": job, "inputs": inputs, "hash": row["hash"]}
    if row["state"] in _STATE:
        meta["state"] = _STATE[row["state"]]
    if row["reason"]:
        meta["reason"] = row["reason"]
    return json.dumps(meta, separators=(",", ":")).encode()


def build(
    ctx: PfsContext,
    job: jobs.JobRecord,
    output_rows: Iterable[sqlite3.Row],
    input_files: InputFiles,
) -> tuple[list[Entry], list[str]]:
    """The meta commit's entries for ``job`` and the blobs written for them (pinned: release them
    once the commit refers to them)."""
    rows = datum_records.job_datums(ctx, job)
    outputs: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for path, blob, size, datum_id in output_rows:
        outputs[datum_id].append((path, blob, size))
    datum_inputs = [json.loads(r["inputs"]) for r in rows]
    payloads = [meta_json(job.project, job.pipeline, r, i) for r, i in zip(rows, datum_inputs, strict=True)]
    entries: list[Entry] = []
    for row, inputs in zip(rows, datum_inputs, strict=True):
        datum_id = row["datum_id"]
        for inp in inputs:
            for e in input_files.entries(inp):
                entries.append(Entry(f"/pfs/{datum_id}/{inp['name']}{e.path}", e.blob, e.size, datum_id))
        for path, blob_out, size in outputs.get(datum_id, ()):
            entries.append(Entry(f"/pfs/{datum_id}/out{path}", blob_out, size, datum_id))
    # Stored last: nothing can fail between pinning the blobs and handing them to the caller.
    blobs = ctx.blobs.put_small_many(payloads)
    for row, payload, blob in zip(rows, payloads, blobs, strict=True):
        entries.append(Entry(f"/meta/{row['datum_id']}/meta", blob, len(payload), row["datum_id"]))
    unique = {e.path: e for e in entries}  # two inputs naming one path: one file, as on disk
    return [unique[p] for p in sorted(unique)], blobs
