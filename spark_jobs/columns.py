"""PaySim column names and value sets, without pyarrow: cheap enough to import from a DAG file."""

from __future__ import annotations

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
# PaySim only generates fraud in these two types.
FRAUD_TYPES: tuple[str, ...] = ("TRANSFER", "CASH_OUT")
