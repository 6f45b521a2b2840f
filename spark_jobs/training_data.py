"""ml_train's training and test sets, built one bucket at a time so memory is bounded by a bucket.

The etl output holds mergeable partial aggregates per customer for every split file of a
bucket (``bucket-NN/<file>.parquet``). split hashes customers into buckets, so all partials of
a customer sit in one directory: merging directory by directory gives the same customers as
merging everything at once, without ever holding every customer in this process.

Two passes over the input, one directory at a time:
1. labels only (customer id and fraud count): the number of customers of each class and the
   split keys of the fraud customers, which is all the stratified split needs to be exact;
2. features: merge the directory's partials, derive the features, assign each customer to the
   training set (negatives subsampled), the test set or neither, and append the rows to
   ``train.parquet`` and ``test.parquet`` in a scratch directory.
Spark fits from ``train.parquet`` (read lazily, spilled by Spark if need be) and the tree scores
``test.parquet`` one row group at a time (see tree_scoring.score_tables). Files are read a row
group at a time (etl writes groups of at most etl.ROW_GROUP_ROWS customers) and only the
partials of customers found in several files of a directory (those a new day touched) are
gathered and merged: memory is a row group plus that overlap, at most about one bucket.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spark_jobs.features import (
    FEATURE_COLUMNS,
    KEY,
    LABEL,
    MERGE,
    customer_features_arrow,
)

TRAIN_FILE = "train.parquet"
TEST_FILE = "test.parquet"
ROWS_SCHEMA = pa.schema([pa.field(c, pa.float64()) for c in (*FEATURE_COLUMNS, LABEL)])
_PARTIAL_COLUMNS = (KEY, *MERGE)


class TrainingError(RuntimeError):
    """The input cannot be trained on (message names the path or the problem)."""


def input_files(input_root: Path) -> list[Path]:
    """The etl output's Parquet files in path order (hidden and ``_`` entries skipped)."""
    files = sorted(
        p
        for p in input_root.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(input_root).parts)
    )
    if not files:
        raise TrainingError(f"{input_root}: no Parquet files (is this the etl output?)")
    return files


def bucket_groups(files: list[Path]) -> list[list[Path]]:
    """``files`` grouped by directory (one group per bucket), keeping path order.

    The unit of merging and of memory: every partial of a customer must be in one directory,
    which split's customer-hash buckets guarantee.
    """
    groups: dict[Path, list[Path]] = {}
    for f in files:
        groups.setdefault(f.parent, []).append(f)
    return list(groups.values())


def uniform_key(ids: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """A deterministic uniform [0, 1) value per customer id (splitmix64 of the id and the seed).

    A hash of the id, not a random draw: the same customers land in test on every run.

    PaySim ids are ``C`` + up to 18 digits (split_data rejects others), so the number is hashed
    directly; any other id falls back to pandas' string hash, which is slower.
    """
    try:
        z = pc.cast(pc.utf8_slice_codeunits(ids, 1), pa.int64()).to_numpy().astype(np.uint64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import pandas as pd

        z = pd.util.hash_array(ids.to_numpy(zero_copy_only=False), categorize=False)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15) * np.uint64(seed + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _check_columns(files: list[Path]) -> None:
    for f in files:
        names = pq.read_schema(str(f)).names
        missing = [c for c in _PARTIAL_COLUMNS if c not in names]
        if missing:
            raise TrainingError(f"{f}: lacks column(s) {missing}; expected etl partial aggregates")


def _row_groups(path: Path, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """A Parquet file one row group at a time (``iter_batches`` would buffer several at once)."""
    reader = pq.ParquetFile(str(path))
    for i in range(reader.num_row_groups):
        yield reader.read_row_group(i, columns=columns, use_threads=False)


def _merge(partials: pa.Table) -> pa.Table:
    """One row per customer: the partial columns present in ``partials`` merged as MERGE says."""
    columns = [c for c in partials.column_names if c != KEY]
    grouped = partials.group_by(KEY, use_threads=False).aggregate([(c, MERGE[c]) for c in columns])
    return pa.table({KEY: grouped.column(KEY), **{c: grouped.column(f"{c}_{MERGE[c]}") for c in columns}})


def _group_tables(group: list[Path], columns: tuple[str, ...]) -> Iterator[pa.Table]:
    """The directory's customers with their partials merged, each customer in exactly one table.

    Read a row group at a time: a customer found in one file only (most of them: a new day
    touches a fraction of the customers) passes through as it is; the partials of customers
    found in several files are gathered and merged at the end. So memory is a row group plus
    the customers ids of the directory plus the partials that overlap, not the whole bucket.
    """
    if len(group) == 1:
        yield from _row_groups(group[0], list(columns))
        return
    ids = pa.concat_tables(pq.read_table(str(f), columns=[KEY]) for f in group)
    counted = ids.group_by(KEY, use_threads=False).aggregate([(KEY, "count")])
    shared = counted.column(KEY).filter(pc.greater(counted.column(f"{KEY}_count"), 1)).combine_chunks()
    del ids, counted
    overlapping: list[pa.Table] = []
    for f in group:
        for part in _row_groups(f, list(columns)):
            in_several = pc.is_in(part.column(KEY), value_set=shared)
            overlapping.append(part.filter(in_several))
            yield part.filter(pc.invert(in_several))
    if overlapping:
        yield _merge(pa.concat_tables(overlapping))


@dataclass(frozen=True)
class SplitPlan:
    """A seeded split stratified by label, fixed from the class counts before any feature is read.

    Negatives go to test when their uniform key is ``>= neg_cut``; positives get an exact
    quantile cut (``pos_cut``), so the few frauds are never over- or under-represented in test.
    Training negatives are those with key ``< neg_cut * neg_rate``: a uniform sample.
    """

    pos_cut: float
    neg_cut: float
    neg_rate: float

    def assign(self, label: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(is_train, is_test) masks for customers with boolean ``label`` and split keys ``u``."""
        is_test = (label & (u >= self.pos_cut)) | (~label & (u >= self.neg_cut))
        is_train = (label & (u < self.pos_cut)) | (~label & (u < self.neg_cut * self.neg_rate))
        return is_train, is_test


def plan_split(
    positive_keys: np.ndarray, negatives: int, test_fraction: float, negatives_per_positive: int
) -> tuple[SplitPlan, dict[str, int]]:
    """The split for these positives' keys and this many negatives; (plan, class counts).

    Exactly ``round(positives * test_fraction)`` (at least 1) positives go to test. Negatives are
    split on the key (their share is within a fraction of a percent of the target at this size)
    and the training ones subsampled to at most ``negatives_per_positive`` per training positive
    (0: keep all). With balanced class weights this changes little for the tree but makes fitting
    several times cheaper; the test set always keeps every customer.
    """
    n_pos = len(positive_keys)
    if n_pos < 2 or negatives < 2:
        raise TrainingError(
            f"need at least 2 customers of each class, got {n_pos} fraud and {negatives} legit"
        )
    pos_u = np.sort(positive_keys)
    n_pos_test = max(1, round(n_pos * test_fraction))
    pos_cut = float(pos_u[n_pos - n_pos_test])  # the n_pos_test largest keys go to test
    neg_cut = 1.0 - test_fraction
    rate = 1.0
    if negatives_per_positive > 0:
        rate = min(1.0, negatives_per_positive * (n_pos - n_pos_test) / (negatives * neg_cut))
    counts = {
        "positives": n_pos,
        "negatives": negatives,
        "test_positives": n_pos_test,
        "train_positives": int((pos_u < pos_cut).sum()),
    }
    return SplitPlan(pos_cut=pos_cut, neg_cut=neg_cut, neg_rate=rate), counts


def label_pass(groups: list[list[Path]], seed: int) -> tuple[np.ndarray, int]:
    """(split keys of the fraud customers, number of legit customers), reading two columns.

    Customers without a fraud count (null) are left out, as in the feature pass.
    """
    positive_keys: list[np.ndarray] = []
    negatives = 0
    for group in groups:
        for table in _group_tables(group, (KEY, "n_fraud")):
            table = table.filter(pc.is_valid(table.column("n_fraud")))
            fraud_ids = table.column(KEY).filter(pc.greater(table.column("n_fraud"), 0))
            positive_keys.append(uniform_key(fraud_ids, seed))
            negatives += table.num_rows - len(fraud_ids)
    return np.concatenate(positive_keys) if positive_keys else np.empty(0), negatives


@dataclass
class PreparedData:
    """The training and test rows (FEATURE_COLUMNS + LABEL, float64) as Parquet files.

    Owns its scratch directory: :meth:`close` removes it (so does the end of the process).
    """

    train_path: Path
    test_path: Path
    counts: dict[str, int]
    directories: int
    _scratch: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


def prepare_training_data(
    files: list[Path],
    seed: int,
    test_fraction: float,
    negatives_per_positive: int,
    scratch_dir: Path | None = None,
) -> PreparedData:
    """Split the customers of the etl output ``files`` into train/test Parquet files, bucket by bucket.

    ``scratch_dir`` (default: a new temporary directory, removed by ``close``) receives
    ``train.parquet`` and ``test.parquet``. Counts: positives, negatives, test_positives,
    train_positives, train_negatives, test_rows.
    """
    _check_columns(files)
    groups = bucket_groups(files)
    plan, counts = plan_split(*label_pass(groups, seed), test_fraction, negatives_per_positive)
    scratch = None
    if scratch_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="pachflow-train-")
        scratch_dir = Path(scratch.name)
    scratch_dir.mkdir(parents=True, exist_ok=True)
    train_path, test_path = scratch_dir / TRAIN_FILE, scratch_dir / TEST_FILE
    train_negatives = test_rows = 0
    with (
        pq.ParquetWriter(str(train_path), ROWS_SCHEMA) as train,
        pq.ParquetWriter(str(test_path), ROWS_SCHEMA) as test,
    ):
        for group in groups:
            for table in _group_tables(group, _PARTIAL_COLUMNS):
                customers = customer_features_arrow(table)
                customers = customers.filter(pc.is_valid(customers.column(LABEL)))
                label = customers.column(LABEL).to_numpy() == 1.0
                is_train, is_test = plan.assign(label, uniform_key(customers.column(KEY), seed))
                rows = customers.select(ROWS_SCHEMA.names).cast(ROWS_SCHEMA)
                for writer, mask in ((train, is_train), (test, is_test)):
                    if mask.any():
                        writer.write_table(rows.filter(pa.array(mask)))
                train_negatives += int((~label & is_train).sum())
                test_rows += int(is_test.sum())
    counts.update(train_negatives=train_negatives, test_rows=test_rows)
    return PreparedData(train_path, test_path, counts, len(groups), scratch)


def iter_rows(path: Path) -> Iterator[pa.Table]:
    """The rows of a prepared Parquet file, one row group (a part of a bucket) at a time."""
    yield from _row_groups(path)
