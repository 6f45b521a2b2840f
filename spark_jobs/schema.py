"""The PaySim transaction schema (Kaggle ``ealaxi/paysim1``), in one place for every job.

Column names, order and types are exactly those of the Kaggle CSV:
step int64, type str, amount float64, nameOrig str, oldbalanceOrg float64, newbalanceOrig
float64, nameDest str, oldbalanceDest float64, newbalanceDest float64, isFraud int64,
isFlaggedFraud int64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

COLUMNS: tuple[str, ...] = (
    "step",
    "type",
    "amount",
    "nameOrig",
    "oldbalanceOrg",
    "newbalanceOrig",
    "nameDest",
    "oldbalanceDest",
    "newbalanceDest",
    "isFraud",
    "isFlaggedFraud",
)

INT_COLUMNS: tuple[str, ...] = ("step", "isFraud", "isFlaggedFraud")
FLOAT_COLUMNS: tuple[str, ...] = (
    "amount",
    "oldbalanceOrg",
    "newbalanceOrig",
    "oldbalanceDest",
    "newbalanceDest",
)
STRING_COLUMNS: tuple[str, ...] = ("type", "nameOrig", "nameDest")
FLAG_COLUMNS: tuple[str, ...] = ("isFraud", "isFlaggedFraud")

TRANSACTION_TYPES: tuple[str, ...] = ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")
# PaySim only has fraud in these two types (reference: seed-demo-and-paysim.md §2).
FRAUD_TYPES: tuple[str, ...] = ("TRANSFER", "CASH_OUT")

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
