"""A class-data-sharing (AppCDS) archive for the pipeline jobs' Spark driver JVM.

Why: a pipeline job starts a fresh JVM, and on two cores loading and verifying Spark's ~10k
classes is a large part of a short job (ml_train: ~1.5 s of the session start and ~1 s of the
first DataFrame, benchmarks/full_pipeline.py). A JDK 13+ dynamic CDS archive holds those
classes pre-parsed; a JVM started with ``-XX:SharedArchiveFile`` maps it instead of loading
the jars class by class. The archive is tied to the JDK build and Spark's jars, so it is
built per installation, like compiled bytecode: ``make install`` and the worker image
(Dockerfile.worker) run ``python -m spark_jobs.jvm_archive``, which runs a small Spark
workload touching the classes the jobs use and lets the JVM dump them at exit.

:func:`java_options` returns the flag when a matching archive exists, else nothing: without
it (or if the JVM rejects it, which it reports and ignores) jobs run exactly as before.
Environment: ``SPARK_CDS_ARCHIVE`` = a path to use instead, or ``off``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("pachflow.jvm_archive")

ENV = "SPARK_CDS_ARCHIVE"
PID_MARK = "jvm-pid: "


def _java() -> Path | None:
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    found = candidate if candidate and candidate.exists() else shutil.which("java")
    return Path(found).resolve() if found else None


def archive_key() -> str | None:
    """Identifies the JDK build and Spark version the archive belongs to (None without a JDK)."""
    import pyspark

    java = _java()
    if java is None:
        return None
    stat = java.stat()
    spark_jars = Path(pyspark.__file__).parent / "jars"
    material = f"{java}|{stat.st_size}|{stat.st_mtime_ns}|{pyspark.__version__}|{spark_jars}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def candidate_paths() -> list[Path]:
    """Where this installation's archive may live, in order: ``SPARK_CDS_ARCHIVE``, else next to
    the Python environment, else the user's cache (for environments that are not writable, such
    as a container image's system site). Empty: disabled (``off``) or no JDK."""
    override = os.environ.get(ENV, "").strip()
    if override.lower() == "off":
        return []
    if override:
        return [Path(override)]
    key = archive_key()
    if key is None:
        return []
    name = f"spark-cds-{key}.jsa"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pachflow"
    return [Path(sys.prefix) / "share" / "pachflow" / name, cache / name]


def archive_path() -> Path | None:
    """The archive this installation has built, if any."""
    return next((p for p in candidate_paths() if p.is_file()), None)


def build_target() -> Path | None:
    """Where to build the archive: the first candidate whose folder can be created and written."""
    for path in candidate_paths():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path.parent, os.W_OK):
            return path
    return None


def java_options() -> str:
    """``-XX:SharedArchiveFile=…`` when this installation has an archive, else ``""``."""
    path = archive_path()
    return f"-XX:SharedArchiveFile={path}" if path is not None else ""


def _workload() -> None:
    """Touch the Spark classes the pipeline jobs use: Arrow DataFrames, SQL aggregation, MLlib
    tree fit, Parquet write/read and model save (what ml_train and the Spark ETL engine do)."""
    import numpy as np
    import pyarrow as pa
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import DecisionTreeClassifier
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    from spark_jobs.spark_session import build_session

    spark = build_session("pachflow-jvm-archive")
    rng = np.random.default_rng(0)
    table = pa.table(
        {"a": rng.random(2000), "b": rng.random(2000), "id": [f"C{i % 300}" for i in range(2000)]}
    )
    frame = spark.createDataFrame(table).withColumn("label", (F.col("a") > 0.5).cast("double")).cache()
    frame.groupBy("id").agg(F.count(F.lit(1)), F.avg("a"), F.max("b")).toArrow()
    model = Pipeline(
        stages=[
            VectorAssembler(inputCols=["a", "b"], outputCol="features"),
            DecisionTreeClassifier(labelCol="label", maxDepth=3),
        ]
    ).fit(frame)
    with tempfile.TemporaryDirectory() as tmp:
        frame.write.parquet(f"{tmp}/frame")
        spark.read.parquet(f"{tmp}/frame").count()
        model.write().save(f"{tmp}/model")
    print(f"{PID_MARK}{spark.sparkContext._gateway.proc.pid}", flush=True)  # the parent waits for it
    spark.stop()


def build(path: Path, timeout: float = 300.0) -> Path:
    """Run the workload in a child JVM that dumps its classes to ``path`` (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    env = {**os.environ, ENV: "off", "SPARK_DRIVER_JAVA_OPTIONS": f"-XX:ArchiveClassesAtExit={tmp}"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "spark_jobs.jvm_archive", "--workload"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the archive workload failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    marks = [line for line in done.stdout.splitlines() if line.startswith(PID_MARK)]
    if not marks:
        raise RuntimeError(f"the archive workload did not report its JVM:\n{done.stdout[-2000:]}")
    jvm_pid = int(marks[-1].removeprefix(PID_MARK))  # the JVM's own output: CDS notes on skipped classes
    # The JVM exits (and writes the archive) once its Python parent is gone; wait for that.
    while _alive(jvm_pid) and time.monotonic() - started < timeout:
        time.sleep(0.1)
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise RuntimeError(f"the JVM wrote no archive to {tmp}:\n{done.stderr[-2000:]}")
    tmp.replace(path)
    log.info("wrote %s (%.0f MB) in %.1fs", path, path.stat().st_size / 1e6, time.monotonic() - started)
    return path


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spark_jobs.jvm_archive", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the archive exists")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workload:
        _workload()
        return 0
    existing = archive_path()
    if existing is not None and not args.force:
        print(f"up to date: {existing}")
        return 0
    path = build_target()
    if path is None:
        print("no JDK found, SPARK_CDS_ARCHIVE=off, or no writable folder: no archive built", file=sys.stderr)
        return 0
    try:
        build(path)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        # Only a speed-up: the jobs run without it, so an install must not fail over it.
        print(f"warning: no Spark CDS archive ({exc})", file=sys.stderr)
        return 0
    print(f"built {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
