"""Pipeline ``etl``: per-customer aggregates of one bucket's transactions with PySpark.

Input: the ``split_data`` output (``bucket-NN/<raw file stem>.parquet``). In Pachyderm each
datum is one bucket file (glob ``/bucket-*/*``) and ``datum_batching`` keeps one JVM for all
datums of a worker; run directly, every bucket file under ``--input`` is processed in turn.
Output: ``bucket-NN/<raw file stem>.parquet`` with one row of mergeable aggregates per
customer (see spark_jobs.features), so each datum writes only its own path.
Engines (env ETL_ENGINE): ``spark`` (the default of this module: PySpark) or ``arrow`` (pyarrow's
hash aggregation, the same table; tests check both agree). pachyderm_specs/etl.json selects
``arrow``: a bucket datum is ~400k rows even at full PaySim size, which pyarrow aggregates in a
fraction of a second while a JVM start alone costs ~20 s on a loaded 2-core machine; set
``ETL_ENGINE=spark`` in the spec for datums that outgrow one process. With the spark engine the
session starts with the first datum that needs it, and ETL_ARROW_BELOW_ROWS (opt-in, default 0)
still sends datums smaller than that to pyarrow.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from spark_jobs.features import partial_aggregates, partial_aggregates_arrow
from spark_jobs.parquet_output import write_options
from spark_jobs.schema import ARROW_SCHEMA, spark_schema
from spark_jobs.worker_env import batched_datums, in_batching_worker, resolve_datum_path, setting

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("pachflow.etl")

# Customers per Parquet row group of the output: ml_train reads a bucket's single file one row
# group at a time, so this bounds its memory however large a bucket grows.
ROW_GROUP_ROWS = 131_072


class DatumError(Exception):
    """A datum that cannot be processed (message names the path)."""


class LazySpark:
    """A SparkSession started on first use, so a run whose datums never need Spark starts no JVM."""

    def __init__(self, factory: Callable[[], SparkSession]) -> None:
        self._factory = factory
        self._session: SparkSession | None = None

    @classmethod
    def of(cls, session: SparkSession) -> LazySpark:
        return cls(lambda: session)

    def get(self) -> SparkSession:
        if self._session is None:
            self._session = self._factory()
        return self._session

    @property
    def started(self) -> bool:
        return self._session is not None

    def stop(self) -> None:
        if self._session is not None:
            self._session.stop()


ENGINES = ("spark", "arrow")


def etl_engine() -> str:
    """ETL_ENGINE: ``spark`` (default) or ``arrow``; anything else is a clear error."""
    raw = os.environ.get("ETL_ENGINE", "").strip().lower() or "spark"
    if raw not in ENGINES:
        raise DatumError(f"ETL_ENGINE={raw!r} is not one of {', '.join(ENGINES)}")
    return raw


def arrow_below_rows() -> int:
    """ETL_ARROW_BELOW_ROWS: datums with fewer rows are aggregated with pyarrow (default 0: never).

    Opt-in: Spark is the ETL engine; for a small incremental datum (a new day's file in a
    bucket) starting a JVM costs more than the aggregation itself.
    """
    raw = os.environ.get("ETL_ARROW_BELOW_ROWS", "").strip()
    return int(raw) if raw.isdigit() else 0


def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        p for p in path.rglob("*.parquet") if not any(part.startswith((".", "_")) for part in p.parts)
    )


def datums_under(input_root: Path) -> list[Path]:
    """What glob ``/bucket-*/*`` matches: every file directly inside a bucket directory."""
    return sorted(
        p
        for bucket in input_root.glob("bucket-*")
        if bucket.is_dir()
        for p in bucket.iterdir()
        if not p.name.startswith((".", "_"))
    )


def output_path_for(datum: Path, input_root: Path, output_dir: Path) -> Path:
    """A file datum keeps its relative path; a directory datum gets ``<dir>/aggregates.parquet``."""
    try:
        relative = datum.relative_to(input_root)
    except ValueError:
        relative = Path(datum.name)
    if datum.is_file():
        return output_dir / relative.with_suffix(".parquet")
    return output_dir / relative / "aggregates.parquet"


def aggregate_datum(
    spark: SparkSession | LazySpark,
    datum: Path,
    input_root: Path,
    output_dir: Path,
    arrow_below: int = 0,
    engine: str = "spark",
) -> Path:
    """Aggregate one datum (a bucket file or directory) into its output Parquet file.

    With ``engine`` (see etl_engine); the spark engine hands datums with fewer than
    ``arrow_below`` rows to pyarrow (see arrow_below_rows).
    """
    files = _data_files(datum)
    if not files:
        raise DatumError(f"{datum}: no Parquet file to aggregate")
    started = time.monotonic()
    if engine == "spark" and arrow_below:
        rows = sum(pq.read_metadata(str(f)).num_rows for f in files)
        engine = "arrow" if rows < arrow_below else "spark"
    try:
        if engine == "arrow":
            table = partial_aggregates_arrow(pq.read_table([str(f) for f in files], schema=ARROW_SCHEMA))
        else:
            session = spark.get() if isinstance(spark, LazySpark) else spark
            transactions = session.read.schema(spark_schema()).parquet(*[str(f) for f in files])
            table = partial_aggregates(transactions).toArrow()
    except Exception as exc:  # Spark's own message is long; name the datum first
        raise DatumError(f"{datum}: aggregation failed: {exc}") from exc
    target = output_path_for(datum, input_root, output_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(table, str(tmp), row_group_size=ROW_GROUP_ROWS, **write_options(table.schema))
    tmp.replace(target)
    log.info(
        "%s: %s customers from %d file(s) with %s -> %s (%.1fs)",
        datum.name if datum.is_file() else datum,
        f"{table.num_rows:,}",
        len(files),
        engine,
        target.relative_to(output_dir),
        time.monotonic() - started,
    )
    return target


def run_directory(spark: SparkSession | LazySpark, input_root: Path, output_dir: Path) -> list[Path]:
    """Process every datum under ``input_root`` (the direct, non-Pachyderm mode)."""
    datums = datums_under(input_root)
    if not datums:
        raise DatumError(f"{input_root}: no bucket-*/ files found (is this the split_data output?)")
    outputs = []
    engine = etl_engine()
    for i, datum in enumerate(datums, start=1):
        outputs.append(aggregate_datum(spark, datum, input_root, output_dir, arrow_below_rows(), engine))
        log.info("etl progress: %d/%d datums", i, len(datums))
    return outputs


def run_batched(spark: SparkSession | LazySpark, input_name: str, input_root: Path, output_dir: Path) -> None:
    """Serve datums from the Pachyderm worker until it stops this process."""
    count = 0
    for done in batched_datums(input_name, input_root):
        value = os.environ.get(input_name, "")
        try:
            if not value:
                raise DatumError(f"datum env variable {input_name!r} is not set by the worker")
            datum = resolve_datum_path(value, input_name, input_root)
            aggregate_datum(spark, datum, input_root, output_dir, arrow_below_rows(), etl_engine())
            count += 1
            done(None)
        except Exception as exc:
            log.error("datum %s failed: %s", os.environ.get("PACH_DATUM_ID", "?"), exc)
            done(exc)
        log.info("etl: %d datum(s) done in this worker", count)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.etl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="split_data output (e.g. /pfs/split_data)")
    parser.add_argument("--output", type=Path, required=True, help="output directory (e.g. /pfs/out)")
    parser.add_argument(
        "--input-name", default=None, help="Pachyderm input name (default: --input's basename)"
    )
    parser.add_argument(
        "--datum-batching",
        action="store_true",
        help="ask the Pachyderm worker for datums (NextDatum) instead of processing the whole input",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from spark_jobs.spark_session import build_session

    batching = args.datum_batching and in_batching_worker()
    if args.datum_batching and not batching:
        log.info(
            "not inside a datum-batching worker (PPS_WORKER_GRPC_PORT unset): processing all of %s",
            args.input,
        )
    spark = LazySpark(lambda: build_session("pachflow-etl"))
    try:
        if batching:
            run_batched(spark, args.input_name or args.input.name, args.input, args.output)
        else:
            run_directory(spark, args.input, args.output)
    except DatumError as exc:
        print(f"etl failed: {exc}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    if setting("ETL_ENGINE", "").lower() == "arrow":  # PySpark may want pandas; pyarrow alone never does
        from spark_jobs.pandas_guard import block_pandas_import

        block_pandas_import()
    raise SystemExit(main())
