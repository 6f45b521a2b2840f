"""Pipeline ``split_data``: stream raw PaySim CSVs into customer hash buckets as Parquet.

For every input file (one datum per raw file in Pachyderm, glob ``/*``) this:
- checks the header against the PaySim schema (a file without it is unusable: the datum fails);
- reads the file in blocks with pyarrow's streaming CSV reader, so memory stays bounded;
- validates every row (field count, empty values, numbers, transaction type, account ids,
  0/1 flags) and writes rejected rows with their line number and reason to
  ``rejects/<file stem>.csv``, and a summary of the file to ``rejects/<file stem>.json``
  (the contract :mod:`pachflow.rejects` reads: ``file``, ``rows``, ``rejected``, ``reasons``,
  ``first``, ``rejects_file``);
- keeps the configured transaction types (default: all) and writes each valid row to
  ``bucket-NN/<file stem>.parquet``, where NN is a stable hash of ``nameOrig`` modulo N.
Every output path is derived from the input file's name, so datums never collide.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from spark_jobs.parquet_output import write_options
from spark_jobs.schema import (
    ARROW_SCHEMA,
    COLUMNS,
    FLAG_COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    TRANSACTION_TYPES,
)

log = logging.getLogger("pachflow.split")

DEFAULT_BUCKETS = 16
BLOCK_SIZE = 4 << 20  # bytes per CSV block: ~55k rows, keeps peak memory low and threads busy
ROW_GROUP_ROWS = 131_072  # rows buffered per bucket before a Parquet row group is written
# zstd level 1: split is CPU-bound; level 3 would save 9 % more bytes for ~10 % more of split's CPU
BUCKET_WRITE_OPTIONS = write_options(ARROW_SCHEMA, dictionary=("type",), level=1)
MAX_REJECT_DETAILS = 100_000  # rejected rows kept with line/reason per file; the rest only counted
PROGRESS_EVERY_ROWS = 1_000_000
FIRST_REASONS = 5  # rejected rows quoted (line and reason) in a file's summary
WORKERS = 2  # threads converting/validating/sorting blocks while the main thread reads and writes
BLOCKS_IN_FLIGHT = 4  # blocks read but not yet written: bounds the extra memory to a few blocks
_FLOAT_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_INT_RE = r"^[+-]?\d+$"
_ID_RE = {"nameOrig": r"^C\d{1,18}$", "nameDest": r"^[CM]\d{1,18}$"}
GZIP_MAGIC = b"\x1f\x8b"


T = TypeVar("T")
R = TypeVar("R")


class UnusableFileError(Exception):
    """The file cannot be used at all (no PaySim header, not CSV text, or no valid row)."""


@dataclass(frozen=True)
class SplitConfig:
    buckets: int = DEFAULT_BUCKETS
    keep_types: frozenset[str] = frozenset(TRANSACTION_TYPES)
    block_size: int = BLOCK_SIZE
    row_group_rows: int = ROW_GROUP_ROWS
    max_reject_details: int = MAX_REJECT_DETAILS


@dataclass
class FileResult:
    path: Path
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    filtered: int = 0
    bucket_rows: dict[int, int] = field(default_factory=dict)
    first_rejects: list[tuple[int, str, str]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


def bucket_dir_name(bucket: int, buckets: int) -> str:
    return f"bucket-{bucket:0{max(2, len(str(buckets - 1)))}d}"


def bucket_of(name_orig: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """Stable bucket of each ``C<digits>`` id: splitmix64 of the number, modulo ``buckets``.

    The same customer lands in the same bucket on every machine and run (unlike Python's
    salted ``hash``), and the mixing spreads sequential ids evenly.
    """
    digits = pc.utf8_slice_codeunits(name_orig, 1)
    x = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(buckets)).astype(np.int64)


def output_stem(relative: Path) -> str:
    """``2024/day-01.csv.gz`` -> ``2024__day-01``: unique per input file, flat, no extension."""
    name = relative.name
    for suffix in (".gz", ".bz2", ".zst", ".lz4"):
        name = name.removesuffix(suffix)
    parts = [*relative.parent.parts, name.removesuffix(".csv").removesuffix(".txt")]
    return "__".join(p for p in parts if p not in ("", "."))


def read_header(path: Path) -> list[str]:
    """The header's column names; UnusableFileError (naming the file) if it is not a PaySim CSV."""
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            head = stream.read(64 * 1024)
    except (OSError, pa.ArrowException) as exc:
        raise UnusableFileError(f"{path}: cannot be read: {exc}") from exc
    if not head.strip():
        raise UnusableFileError(f"{path}: empty file (no header)")
    if head.startswith(GZIP_MAGIC):
        raise UnusableFileError(
            f"{path}: gzip-compressed data in a file not named *.gz (rename it to {path.name}.gz "
            "to have it decompressed)"
        )
    first_line, newline, _ = head.partition(b"\n")
    first_line = first_line.rstrip(b"\r")
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnusableFileError(f"{path}: not a CSV text file (line 1 is not UTF-8)") from exc
    if "\x00" in text:
        raise UnusableFileError(f"{path}: not a CSV text file (binary data on line 1)")
    names = [n.strip().strip('"').strip() for n in next(csv.reader([text]))]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        overlong = "" if newline or len(head) < 64 * 1024 else " (no line break in its first 64 KiB)"
        raise UnusableFileError(
            f"{path}: line 1 is not a PaySim header{overlong}: missing column(s) {', '.join(missing)} "
            f"(expected {','.join(COLUMNS)}; got {text[:200]!r})"
        )
    if len(set(names)) != len(names):
        raise UnusableFileError(f"{path}: line 1 has duplicate column names: {text[:200]!r}")
    return names


class _Rejects:
    """Collects rejected rows; line numbers are resolved at the end (see ``resolve``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.malformed_count = 0
        self.by_index: list[tuple[int, str, str]] = []  # (index among parsed rows, reason, raw row)
        self.malformed: list[str] = []  # raw text of rows with the wrong number of fields, in order

    def add_malformed(self, text: str, actual: int, expected: int) -> None:
        self.count += 1
        self.malformed_count += 1
        if len(self.malformed) < self.limit:
            self.malformed.append(f"{actual} fields instead of {expected}\x00{text}")

    def add_rows(self, indices: np.ndarray, reasons: list[str], raws: list[str]) -> None:
        self.count += len(indices)
        room = self.limit - len(self.by_index)
        for i, reason, raw in list(zip(indices.tolist(), reasons, raws, strict=True))[: max(room, 0)]:
            self.by_index.append((i, reason, raw))

    def resolve(self, path: Path, expected_fields: int) -> list[tuple[int, str, str]]:
        """(line, reason, raw row) sorted by line.

        pyarrow does not report line numbers of malformed rows, so when there are any, one
        extra pass over the file (only then) finds them; parsed-row indices are then shifted
        past the malformed lines before them. Line 1 is the header.
        """
        # All of them, even past the detail limit: each one shifts the lines of later rows.
        malformed_lines = _malformed_line_numbers(path, expected_fields) if self.malformed_count else []
        out: list[tuple[int, str, str]] = []
        for reason_text, line in zip(self.malformed, malformed_lines, strict=False):
            reason, _, text = reason_text.partition("\x00")
            out.append((line, reason, text))
        j = 0
        for index, reason, raw in self.by_index:  # by_index is in increasing index order
            line = index + 2 + j  # j malformed lines lie before the previous reject
            while j < len(malformed_lines) and malformed_lines[j] <= line:
                line += 1
                j += 1
            out.append((line, reason, raw))
        out.sort(key=lambda r: r[0])
        return out


def _malformed_line_numbers(path: Path, expected_fields: int) -> list[int]:
    import io

    found: list[int] = []
    with pa.input_stream(str(path), compression="detect") as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        # Line by line, like pyarrow's reader (newlines inside quoted values are not supported).
        for line_no, line in enumerate(text, start=1):
            row = next(csv.reader([line]), [])
            if line_no > 1 and row and len(row) != expected_fields:
                found.append(line_no)
    return found


def _raw_rows(batch: pa.RecordBatch, names: list[str], mask: np.ndarray) -> list[str]:
    rows = batch.filter(pa.array(mask))
    cols = [rows.column(n).to_pylist() for n in names]
    return [",".join(values) for values in zip(*cols, strict=True)]


def _as_text(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[str, np.ndarray]]:
    """The batch's binary columns as UTF-8 strings, and per column the mask of values that were not UTF-8.

    Columns are read as bytes so that one bad byte rejects its row instead of failing the whole
    file (pyarrow's string conversion fails the block). Bad values are decoded with U+FFFD
    replacement characters, so the rejects file can still show them.
    """
    columns, invalid = [], {}
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        try:
            columns.append(col.cast(pa.string()))
            continue
        except pa.ArrowInvalid:  # slow path, only for blocks with bad bytes
            pass
        values = col.to_pylist()
        mask = np.zeros(len(values), dtype=bool)
        text = []
        for i, raw in enumerate(values):
            try:
                text.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                mask[i] = True
                text.append(raw.decode("utf-8", errors="replace"))
        columns.append(pa.array(text, pa.string()))
        invalid[name] = mask
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names), invalid


def _validate(
    batch: pa.RecordBatch, keep: frozenset[str], not_utf8: dict[str, np.ndarray] | None = None
) -> tuple[pa.Table | None, np.ndarray, list[str], int]:
    """Typed table of valid kept rows, plus the mask and reasons of rejected rows, and #filtered."""
    n = batch.num_rows
    bad = np.zeros(n, dtype=bool)
    reasons = np.empty(n, dtype=object)

    def flag(mask: np.ndarray, reason_of) -> None:
        new = mask & ~bad
        if new.any():
            for i in np.flatnonzero(new):
                reasons[i] = reason_of(int(i))
            bad[new] = True

    cols = {name: batch.column(name) for name in COLUMNS}
    for name, mask in (not_utf8 or {}).items():
        text = cols[name].to_pylist()
        flag(mask, lambda i, name=name, text=text: f"{name} is not valid UTF-8: {text[i]!r}")
    empties = {
        name: pc.equal(pc.utf8_length(col), 0).to_numpy(zero_copy_only=False) for name, col in cols.items()
    }
    blank = np.logical_and.reduce(list(empties.values()))
    flag(blank, lambda i: "empty row (every field empty)")
    for name in COLUMNS:
        flag(empties[name], lambda i, name=name: f"empty value for {name}")

    typed: dict[str, pa.Array] = {}
    for name in FLOAT_COLUMNS + INT_COLUMNS:
        col = cols[name]
        target = pa.float64() if name in FLOAT_COLUMNS else pa.int64()
        try:
            values = pc.cast(col, target)
        except pa.ArrowInvalid:  # slow path, only for blocks with a malformed number
            pattern = _FLOAT_RE if name in FLOAT_COLUMNS else _INT_RE
            ok = pc.match_substring_regex(col, pattern)
            ok_np = ok.to_numpy(zero_copy_only=False)
            text = col.to_pylist()
            kind = "a number" if name in FLOAT_COLUMNS else "an integer"
            flag(~ok_np, lambda i, name=name, text=text, kind=kind: f"{name} is not {kind}: {text[i]!r}")
            values = pc.cast(pc.if_else(ok, col, "0"), target)
        typed[name] = values
        arr = values.to_numpy(zero_copy_only=False)
        if name in FLOAT_COLUMNS:
            flag(~np.isfinite(arr), lambda i, name=name, arr=arr: f"{name} is not finite: {arr[i]}")
            flag(arr < 0, lambda i, name=name, arr=arr: f"{name} is negative: {arr[i]}")
        elif name in FLAG_COLUMNS:
            flag(
                (arr != 0) & (arr != 1), lambda i, name=name, arr=arr: f"{name} must be 0 or 1, got {arr[i]}"
            )
        else:
            flag(arr < 1, lambda i, arr=arr: f"step must be >= 1, got {arr[i]}")

    kind = cols["type"]
    known = pc.is_in(kind, value_set=pa.array(TRANSACTION_TYPES)).to_numpy(zero_copy_only=False)
    type_text = kind.to_pylist() if not known.all() else None
    flag(~known, lambda i: f"unknown transaction type {type_text[i]!r}")
    for name, pattern in _ID_RE.items():
        ok = pc.match_substring_regex(cols[name], pattern).to_numpy(zero_copy_only=False)
        if not ok.all():
            text = cols[name].to_pylist()
            want = "C<digits>" if name == "nameOrig" else "C<digits> or M<digits>"
            flag(~ok, lambda i, name=name, text=text, want=want: f"{name} must look like {want}: {text[i]!r}")

    good = ~bad
    if len(keep) < len(TRANSACTION_TYPES):
        kept = pc.is_in(kind, value_set=pa.array(sorted(keep))).to_numpy(zero_copy_only=False)
        filtered = int((good & ~kept).sum())
        good &= kept
    else:
        filtered = 0
    bad_reasons = [str(r) for r in reasons[bad]]
    if not good.any():
        return None, bad, bad_reasons, filtered
    mask = pa.array(good)
    arrays = [pc.filter(typed[name] if name in typed else cols[name], mask) for name in ARROW_SCHEMA.names]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA), bad, bad_reasons, filtered


def split_by_bucket(table: pa.Table, buckets: int) -> list[tuple[int, pa.Table]]:
    """(bucket, its rows in their original order) for every non-empty bucket, by bucket number."""
    ids = bucket_of(table.column("nameOrig"), buckets)
    order = np.argsort(ids, kind="stable")
    counts = np.bincount(ids, minlength=buckets)
    table = table.take(pa.array(order))
    parts, start = [], 0
    for bucket, count in enumerate(counts.tolist()):
        if count:
            parts.append((bucket, table.slice(start, count)))
        start += count
    return parts


class _BucketWriters:
    """Per-bucket Parquet writers that buffer rows into reasonably large row groups."""

    def __init__(self, output_dir: Path, stem: str, buckets: int, row_group_rows: int) -> None:
        self.output_dir, self.stem, self.buckets, self.row_group_rows = (
            output_dir,
            stem,
            buckets,
            row_group_rows,
        )
        self.buffers: dict[int, list[pa.Table]] = {}
        self.buffered: dict[int, int] = {}
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.opened: list[int] = []
        self.rows: dict[int, int] = {}

    def _final(self, bucket: int) -> Path:
        return self.output_dir / bucket_dir_name(bucket, self.buckets) / f"{self.stem}.parquet"

    def _tmp(self, bucket: int) -> Path:
        final = self._final(bucket)
        return final.with_name(f".{final.name}.tmp")

    def add(self, bucket_parts: list[tuple[int, pa.Table]]) -> None:
        """Buffer one block's rows, as ``split_by_bucket`` parts; full buffers become row groups."""
        for bucket, part in bucket_parts:
            self.buffers.setdefault(bucket, []).append(part)
            self.buffered[bucket] = self.buffered.get(bucket, 0) + part.num_rows
            if self.buffered[bucket] >= self.row_group_rows:
                self._flush(bucket)

    def _flush(self, bucket: int) -> None:
        parts = self.buffers.pop(bucket, [])
        self.buffered.pop(bucket, None)
        if not parts:
            return
        writer = self.writers.get(bucket)
        if writer is None:
            tmp = self._tmp(bucket)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            self.opened.append(bucket)  # before the writer: opening can fail after creating the file
            writer = pq.ParquetWriter(str(tmp), ARROW_SCHEMA, **BUCKET_WRITE_OPTIONS)
            self.writers[bucket] = writer
        table = pa.concat_tables(parts).combine_chunks()
        writer.write_table(table)
        self.rows[bucket] = self.rows.get(bucket, 0) + table.num_rows

    def close(self) -> dict[int, int]:
        for bucket in list(self.buffers):
            self._flush(bucket)
        for bucket, writer in self.writers.items():
            writer.close()
            self._tmp(bucket).replace(self._final(bucket))
        return dict(sorted(self.rows.items()))

    def abort(self) -> None:
        for bucket in self.opened:
            try:
                if bucket in self.writers:
                    self.writers[bucket].close()
            finally:
                self._tmp(bucket).unlink(missing_ok=True)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, in_flight: int) -> Iterator[R]:
    """``fn(item)`` for every item, computed by ``workers`` threads, yielded in the items' order.

    At most ``in_flight`` items are taken from ``items`` but not yet yielded (bounded memory).
    Errors surface where a plain sequential loop would raise them: an exception of ``fn`` when its
    result's turn comes, one of ``items`` only after every earlier item's result was yielded.
    Closing the generator cancels queued work and waits for the running calls.
    """
    source = iter(items)
    pending: deque[Future[R]] = deque()
    source_error: Exception | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="split-worker") as pool:
        try:
            while True:
                try:
                    item = next(source)
                except StopIteration:
                    break
                except Exception as exc:
                    source_error = exc
                    break
                pending.append(pool.submit(fn, item))
                if len(pending) >= in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
    if source_error is not None:
        raise source_error


@dataclass
class _Block:
    """One reader block, validated and sorted into buckets (computed in a worker thread)."""

    rows: int
    valid: int
    filtered: int
    bad_indices: np.ndarray  # rejected rows' indices within the block
    bad_reasons: list[str]
    bad_raws: list[str]
    bucket_parts: list[tuple[int, pa.Table]]


def _process_block(batch: pa.RecordBatch, keep: frozenset[str], buckets: int) -> _Block:
    batch, not_utf8 = _as_text(batch)
    table, bad, reasons, filtered = _validate(batch, keep, not_utf8)
    return _Block(
        rows=batch.num_rows,
        valid=0 if table is None else table.num_rows,
        filtered=filtered,
        bad_indices=np.flatnonzero(bad),
        bad_reasons=reasons,
        bad_raws=_raw_rows(batch, list(COLUMNS), bad) if bad.any() else [],
        bucket_parts=[] if table is None else split_by_bucket(table, buckets),
    )


def _batches(reader: pacsv.CSVStreamingReader, path: Path, block_size: int) -> Iterator[pa.RecordBatch]:
    parsed = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise _unreadable(path, parsed, exc, block_size) from exc
        parsed += batch.num_rows
        yield batch


def split_file(path: Path, output_dir: Path, stem: str, config: SplitConfig) -> FileResult:
    """Split one CSV file; raises UnusableFileError (message names the file) if it is unusable."""
    names = read_header(path)
    result = FileResult(path=path)
    rejects = _Rejects(config.max_reject_details)
    expected = len(names)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        rejects.add_malformed(row.text, row.actual_columns, row.expected_columns)
        return "skip"

    try:  # the first block is read here already
        reader = pacsv.open_csv(
            str(path),
            read_options=pacsv.ReadOptions(block_size=config.block_size, skip_rows=1, column_names=names),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() for n in names},
                include_columns=list(COLUMNS),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _unreadable(path, 0, exc, config.block_size) from exc
    writers = _BucketWriters(output_dir, stem, config.buckets, config.row_group_rows)
    parsed = 0
    next_progress = PROGRESS_EVERY_ROWS

    def process(batch: pa.RecordBatch) -> _Block:
        return _process_block(batch, config.keep_types, config.buckets)

    try:
        # The main thread reads blocks and writes results in order; workers do the work between.
        blocks = ordered_map(process, _batches(reader, path, config.block_size), WORKERS, BLOCKS_IN_FLIGHT)
        with closing(blocks):
            for block in blocks:
                if len(block.bad_indices):
                    rejects.add_rows(block.bad_indices + parsed, block.bad_reasons, block.bad_raws)
                writers.add(block.bucket_parts)
                result.valid += block.valid
                result.filtered += block.filtered
                parsed += block.rows
                if parsed >= next_progress:
                    log.info(
                        "%s: %s rows read, %s valid, %s rejected",
                        path.name,
                        f"{parsed:,}",
                        f"{result.valid:,}",
                        f"{rejects.count:,}",
                    )
                    next_progress += PROGRESS_EVERY_ROWS
        result.rows = parsed + rejects.malformed_count
        result.rejected = rejects.count
        if result.valid == 0 and result.filtered == 0 and rejects.count > 0:
            raise UnusableFileError(f"{path}: no valid row ({rejects.count:,} rows rejected)")
        result.bucket_rows = writers.close()
    except BaseException:
        writers.abort()
        raise
    listed = rejects.resolve(path, expected) if rejects.count else []
    if rejects.count:
        _write_rejects(output_dir / "rejects" / f"{stem}.csv", listed, rejects.count)
    result.first_rejects = listed[:FIRST_REASONS]
    result.reasons = _reason_counts(listed)
    return result


def _unreadable(path: Path, parsed: int, exc: pa.ArrowInvalid, block_size: int) -> UnusableFileError:
    """The reader gave up: say where (lines after the rows already parsed) and why, in plain words."""
    where = f"after data row {parsed:,} (line > {parsed + 1:,})" if parsed else "at the first data line"
    if "straddl" in str(exc):
        problem = (
            f"a line is longer than the reader's block of {block_size:,} bytes (not a row-per-line CSV? "
            "raise SPLIT_BLOCK_BYTES if rows really are that long)"
        )
    else:
        problem = str(exc)
    return UnusableFileError(f"{path}: unreadable {where}: {problem}")


def _write_rejects(path: Path, rows: list[tuple[int, str, str]], total: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "reason", "row"])
        writer.writerows(rows)
        if total > len(rows):
            writer.writerow(["", f"{total - len(rows)} more rejected rows not listed", ""])
    tmp.replace(path)


def _reason_counts(listed: list[tuple[int, str, str]]) -> dict[str, int]:
    """Rejected rows per kind of reason (the reason without the offending value after ':')."""
    counts: dict[str, int] = {}
    for _, reason, _ in listed:
        kind = reason.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def write_summary(output_dir: Path, stem: str, result: FileResult, name: str) -> None:
    """``rejects/<stem>.json``: what one input file gave (every file gets one, rejects or not).

    ``reasons`` counts the listed rejected rows (all of them up to the detail limit) by kind.
    """
    summary = {
        "file": name,
        "rows": result.rows,
        "valid": result.valid,
        "rejected": result.rejected,
        "filtered": result.filtered,
        "reasons": result.reasons,
        "first": [{"line": line, "reason": reason} for line, reason, _ in result.first_rejects],
        "rejects_file": f"/rejects/{stem}.csv" if result.rejected else None,
    }
    path = output_dir / "rejects" / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def input_files(input_path: Path) -> list[tuple[Path, Path]]:
    """(file, path relative to the input root) for every non-hidden regular file, sorted."""
    if input_path.is_file():
        return [(input_path, Path(input_path.name))]
    if not input_path.is_dir():
        raise FileNotFoundError(f"input {input_path} does not exist")
    found = []
    for root, dirs, files in os.walk(input_path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                path = Path(root) / name
                found.append((path, path.relative_to(input_path)))
    return found


def input_name(input_path: Path, relative: Path) -> str:
    """How to name an input file to a user: ``repo@commit:/path`` inside a Pachyderm job (the input
    is ``/pfs/<name>`` and pachd sets ``<name>_COMMIT``), else its local path."""
    commit = os.environ.get(f"{input_path.name}_COMMIT", "").strip() if input_path.is_dir() else ""
    if not commit:
        return str(input_path / relative) if input_path.is_dir() else str(input_path)
    return f"{input_path.name}@{commit}:/{relative.as_posix()}"


def removal_hint(name: str) -> str:
    """The command that takes a bad input file out of its repo (only for ``repo@commit:/path``)."""
    repo, at, rest = name.partition("@")
    if not at or ":/" not in rest:
        return ""
    path = rest.split(":", 1)[1]
    return (
        f"; if the file does not belong in {repo}, remove it with `pachflow rm {repo}@master:{path}` "
        "(the branch the pipeline reads), which starts a new run without it"
    )


def split_input(input_path: Path, output_dir: Path, config: SplitConfig) -> list[FileResult]:
    """Split every file under ``input_path``; UnusableFileError lists every unusable file, named as
    ``repo@commit:/path`` in a Pachyderm job, with the command that removes it."""
    results, errors = [], []
    for path, relative in input_files(input_path):
        started = time.monotonic()
        stem = output_stem(relative)
        name = input_name(input_path, relative)
        try:
            result = split_file(path, output_dir, stem, config)
        except UnusableFileError as exc:
            message = str(exc)
            if name != str(path):
                message = message.replace(str(path), name)
            errors.append(message + removal_hint(name))
            continue
        write_summary(output_dir, stem, result, name)
        results.append(result)
        log.info(
            "%s: %s rows, %s valid into %d buckets, %s rejected%s, %s filtered out by type (%.1fs)",
            name,
            f"{result.rows:,}",
            f"{result.valid:,}",
            len(result.bucket_rows),
            f"{result.rejected:,}",
            f" (see rejects/{stem}.csv)" if result.rejected else "",
            f"{result.filtered:,}",
            time.monotonic() - started,
        )
    if errors:
        raise UnusableFileError("; ".join(errors))
    return results


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"split_data: environment variable {name} must be an integer, got {raw!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.split", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--input", type=Path, required=True, help="raw CSV file or directory (e.g. /pfs/raw_data)"
    )
    parser.add_argument("--output", type=Path, required=True, help="output directory (e.g. /pfs/out)")
    parser.add_argument(
        "--buckets",
        type=int,
        default=None,
        help=f"hash buckets (env SPLIT_BUCKETS, default {DEFAULT_BUCKETS})",
    )
    parser.add_argument(
        "--keep-types",
        default=None,
        help="comma-separated transaction types to keep (env SPLIT_KEEP_TYPES, default: all)",
    )
    return parser


def config_from(args: argparse.Namespace) -> SplitConfig:
    buckets = args.buckets if args.buckets is not None else _env_int("SPLIT_BUCKETS", DEFAULT_BUCKETS)
    if not 1 <= buckets <= 4096:
        raise SystemExit(f"split_data: buckets must be between 1 and 4096, got {buckets}")
    raw_types = args.keep_types if args.keep_types is not None else os.environ.get("SPLIT_KEEP_TYPES", "")
    keep = frozenset(t.strip().upper() for t in raw_types.split(",") if t.strip()) or frozenset(
        TRANSACTION_TYPES
    )
    unknown = keep - set(TRANSACTION_TYPES)
    if unknown:
        raise SystemExit(
            f"split_data: unknown transaction type(s) {sorted(unknown)} in keep-types; known: {TRANSACTION_TYPES}"
        )
    return SplitConfig(
        buckets=buckets,
        keep_types=keep,
        block_size=_env_int("SPLIT_BLOCK_BYTES", BLOCK_SIZE),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from(args)
    started = time.monotonic()
    try:
        results = split_input(args.input, args.output, config)
    except (UnusableFileError, FileNotFoundError) as exc:
        print(f"split_data failed: {exc}", file=sys.stderr)
        return 1
    log.info(
        "split %d file(s): %s valid rows, %s rejected, into %d buckets in %.1fs",
        len(results),
        f"{sum(r.valid for r in results):,}",
        f"{sum(r.rejected for r in results):,}",
        config.buckets,
        time.monotonic() - started,
    )
    return 0


if __name__ == "__main__":
    from spark_jobs.pandas_guard import block_pandas_import

    block_pandas_import()
    raise SystemExit(main())
