"""One place for the SparkSession settings of the pipeline jobs (one machine, local mode).

Every job takes an existing session in its library function (so tests share one) and builds
its own with :func:`build_session` in ``main``. Settings can be overridden from the
environment, which is how a Pachyderm spec's ``transform.env`` tunes a pipeline.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from spark_jobs import jvm_archive
from spark_jobs.worker_env import setting

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _extra_sql_conf() -> dict[str, str]:
    """``SPARK_CONF="k1=v1,k2=v2"``: extra Spark settings from a spec's env without code changes."""
    pairs = [item.split("=", 1) for item in setting("SPARK_CONF", "").split(",") if "=" in item]
    return {k.strip(): v.strip() for k, v in pairs}


def build_session(
    app_name: str,
    *,
    master: str | None = None,
    shuffle_partitions: int | None = None,
    driver_memory: str | None = None,
    java_options: str = "",
) -> SparkSession:
    """Build (or reuse) a local SparkSession tuned for one machine.

    Local mode runs executors inside the driver JVM, so ``spark.driver.memory`` is the heap for
    everything; few shuffle partitions avoid hundreds of tiny tasks on a couple of cores; the UI
    and event log are off because nothing looks at them inside a pipeline worker.
    The driver JVM maps this installation's class-data archive when there is one (see
    spark_jobs.jvm_archive). ``java_options`` are the job's own driver JVM options; they come
    before SPARK_DRIVER_JAVA_OPTIONS, so a spec can override them (HotSpot takes the last
    value of an option). Environment overrides: SPARK_MASTER, SPARK_SHUFFLE_PARTITIONS,
    SPARK_DRIVER_MEMORY, SPARK_DRIVER_JAVA_OPTIONS (appended), SPARK_CDS_ARCHIVE.
    """
    # Import here: spark_jobs modules must import cheaply (e.g. `pachflow generate` needs no JVM).
    from pyspark.sql import SparkSession

    master = master or setting("SPARK_MASTER", "local[*]")
    shuffle = shuffle_partitions or int(setting("SPARK_SHUFFLE_PARTITIONS", "8"))
    memory = driver_memory or setting("SPARK_DRIVER_MEMORY", "3g")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.driver.memory", memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.eventLog.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle))
        .config("spark.default.parallelism", str(shuffle))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.adaptive.coalescePartitions.enabled", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.files.maxPartitionBytes", str(64 * 1024 * 1024))
        # Per-customer groupBy: ~1-4 rows per key, so a map-side partial aggregation barely
        # reduces anything before the shuffle; one Complete-mode aggregation is cheaper.
        .config("spark.sql.execution.bypassPartialAggregation", "true")
        # Parquet files from split are written by pyarrow; let Spark trust their schema as-is.
        .config("spark.sql.parquet.mergeSchema", "false")
    )
    java_options = " ".join(
        filter(None, (jvm_archive.java_options(), java_options, setting("SPARK_DRIVER_JAVA_OPTIONS", "")))
    )
    if java_options:
        builder = builder.config("spark.driver.extraJavaOptions", java_options)
    for key, value in _extra_sql_conf().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(setting("SPARK_LOG_LEVEL", "WARN"))
    return session
