"""How the pipelines write their Parquet outputs: zstd, dictionary encoding only where values repeat.

Every output file is stored in Pachyderm (and its blob store) for as long as its commit lives, so
the codec is chosen for size at a write cost no higher than snappy's with dictionary encoding on
every column (measured on PaySim-shaped data at 1x, see benchmarks/full_pipeline.py):
- zstd level 3: split's buckets 42.7 -> 29.5 bytes/row, etl's aggregates 84 -> 53 bytes/row;
  levels above 3 save ~1 % more for 1.5-3x the CPU.
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


def write_options(schema: pa.Schema, dictionary: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keyword arguments for ``pq.ParquetWriter`` / ``pq.write_table`` for a table of ``schema``.

    Integer columns and the string columns named in ``dictionary`` (few distinct values) are
    dictionary-encoded; every other column is plain-encoded.
    """
    unknown = [name for name in dictionary if name not in schema.names]
    if unknown:
        raise ValueError(f"dictionary columns {unknown} are not in the schema {schema.names}")
    encoded = [f.name for f in schema if pa.types.is_integer(f.type) or f.name in dictionary]
    return {"compression": COMPRESSION, "compression_level": COMPRESSION_LEVEL, "use_dictionary": encoded}
