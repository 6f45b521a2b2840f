"""The Parquet settings of split's and etl's outputs: zstd, dictionaries only where values repeat."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_jobs import split
from spark_jobs.parquet_output import write_options
from spark_jobs.split import SplitConfig, split_file


def column_chunks(folder: Path) -> dict[str, list[pq.ColumnChunkMetaData]]:
    """Every column chunk of every Parquet file under ``folder``, by column name."""
    chunks: dict[str, list[pq.ColumnChunkMetaData]] = {}
    files = sorted(folder.glob("bucket-*/*.parquet"))
    assert files, f"no Parquet file under {folder}"
    for f in files:
        meta = pq.read_metadata(f)
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                chunks.setdefault(chunk.path_in_schema, []).append(chunk)
    return chunks


def dictionary_encoded(chunk: pq.ColumnChunkMetaData) -> bool:
    return any("DICTIONARY" in e for e in chunk.encodings)


def test_write_options_dictionary_for_integers_and_named_strings_only() -> None:
    schema = pa.schema([("n", pa.int64()), ("x", pa.float64()), ("id", pa.string()), ("kind", pa.string())])
    options = write_options(schema, dictionary=("kind",))
    assert options["compression"] == "zstd"
    assert options["use_dictionary"] == ["n", "kind"]
    with pytest.raises(ValueError, match=r"dictionary columns \['knd'\] are not in the schema"):
        write_options(schema, dictionary=("knd",))


def test_split_buckets_are_zstd_with_plain_amounts_and_ids(split_dir: Path) -> None:
    chunks = column_chunks(split_dir)
    assert {c.compression for cs in chunks.values() for c in cs} == {"ZSTD"}
    for name in ("type", "step", "isFraud", "isFlaggedFraud"):
        assert all(dictionary_encoded(c) for c in chunks[name]), name
    for name in ("amount", "oldbalanceOrg", "nameOrig", "nameDest"):
        assert not any(dictionary_encoded(c) for c in chunks[name]), name


def test_etl_aggregates_are_zstd_with_dictionary_counts(etl_dir: Path) -> None:
    chunks = column_chunks(etl_dir)
    assert {c.compression for cs in chunks.values() for c in cs} == {"ZSTD"}
    assert all(dictionary_encoded(c) for c in chunks["n_tx"])
    assert not any(dictionary_encoded(c) for c in chunks["sum_amount"] + chunks["nameOrig"])


def test_a_failing_writer_fails_the_file_and_leaves_nothing(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that fails to open (after creating its file) fails the file and leaves no file behind."""
    monkeypatch.setattr(split, "BUCKET_WRITE_OPTIONS", {"compression": "no-such-codec"})
    config = SplitConfig(buckets=2, block_size=16 << 10, row_group_rows=500)
    with pytest.raises(Exception, match="no-such-codec"):
        split_file(raw_dir / "paysim-day-01.csv", tmp_path / "out", "day", config)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
