"""The PaySim transaction schema (Kaggle ``ealaxi/paysim1``), in one place for every job.

Column names, order and types are exactly those of the Kaggle CSV:
step int64, type str, amount float64, nameOrig str, oldbalanceOrg float64, newbalanceOrig
float64, nameDest str, oldbalanceDest float64, newbalanceDest float64, isFraud int64,
isFlaggedFraud int64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from spark_jobs.columns import (
    COLUMNS,
    FLAG_COLUMNS,
    FLOAT_COLUMNS,
    FRAUD_TYPES,
    INT_COLUMNS,
    STRING_COLUMNS,
    TRANSACTION_TYPES,
)

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

ARROW_SCHEMA = pa.schema(
    [
        pa.field(
            name,
            pa.int64() if name in INT_COLUMNS else pa.float64() if name in FLOAT_COLUMNS else pa.string(),
            nullable=False,
        )
        for name in COLUMNS
    ]
)


def spark_schema() -> StructType:
    """The same schema as a Spark ``StructType`` (imported lazily: no JVM needed for the rest)."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    spark_types = {pa.int64(): LongType(), pa.float64(): DoubleType(), pa.string(): StringType()}
    return StructType([StructField(f.name, spark_types[f.type], nullable=False) for f in ARROW_SCHEMA])


__all__ = [
    "ARROW_SCHEMA",
    "COLUMNS",
    "FLAG_COLUMNS",
    "FLOAT_COLUMNS",
    "FRAUD_TYPES",
    "INT_COLUMNS",
    "STRING_COLUMNS",
    "TRANSACTION_TYPES",
    "spark_schema",
]
