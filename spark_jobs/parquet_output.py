"""How the pipelines write their Parquet outputs: zstd, dictionary encoding only where values repeat.

Every output file stays in Pachyderm's storage for as long as its commit lives, so the codec is
chosen for size at about the former CPU cost. Measured on PaySim-shaped data at 1x (6.36 M rows)
against the former snappy (with dictionaries on every column in etl's case):
- etl's aggregates, zstd level 3: 84 -> 52 bytes/row (125 -> 77 MiB), with less CPU (no
  dictionaries to build for nearly unique values).
- split's buckets: level 1 42.7 -> 32.2 bytes/row (259 -> 195 MiB) for +0.04 s of write CPU per
  million rows (~+3 % of split's CPU); level 3 would give 29.5 bytes/row (179 MiB) for +0.13 s
  (~+14 %); levels above 3 save ~1-3 % more for 1.5-4x the write CPU.
- Dictionary encoding pays for columns with few distinct values (steps, transaction types,
  counts, 0/1 flags). Money amounts and account ids are nearly unique: their dictionaries
  overflow and fall back to plain after costing CPU, and plain + zstd is smaller anyway.
  Byte-stream-split for the doubles was measured too: larger with zstd on this data.
Readers need nothing new: zstd is part of the Parquet format (pyarrow, Spark, pandas, DuckDB).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3


def write_options(
    schema: pa.Schema, dictionary: tuple[str, ...] = (), level: int = COMPRESSION_LEVEL
) -> dict[str, Any]:
    """Keyword arguments for ``pq.ParquetWriter`` / ``pq.write_table`` for a table of ``schema``.

    ``level``: the zstd level (1 for a writer whose CPU time matters more than the last 9 %).
    Integer columns and the string columns named in ``dictionary`` (few distinct values) are
    dictionary-encoded; every other column is plain-encoded.
    """
    unknown = [name for name in dictionary if name not in schema.names]
    if unknown:
        raise ValueError(f"dictionary columns {unknown} are not in the schema {schema.names}")
    encoded = [f.name for f in schema if pa.types.is_integer(f.type) or f.name in dictionary]
    return {"compression": COMPRESSION, "compression_level": level, "use_dictionary": encoded}
