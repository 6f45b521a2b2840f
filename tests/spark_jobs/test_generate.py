from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

from spark_jobs.generate import GenerateConfig, generate, main
from spark_jobs.schema import ARROW_SCHEMA, COLUMNS, FRAUD_TYPES, TRANSACTION_TYPES


def _read(path: Path):
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=ARROW_SCHEMA)).to_pandas()


def test_writes_paysim_columns_one_file_per_day(raw_dir: Path) -> None:
    files = sorted(raw_dir.iterdir())
    assert [f.name for f in files] == ["paysim-day-01.csv", "paysim-day-02.csv"]
    assert files[0].read_text().splitlines()[0] == ",".join(COLUMNS)
    days = [_read(f) for f in files]
    assert sum(len(d) for d in days) == 24_000
    # step is hours: day 1 = steps 1-24, day 2 = steps 25-48, sorted like the Kaggle file
    assert days[0]["step"].between(1, 24).all() and days[1]["step"].between(25, 48).all()
    assert days[0]["step"].is_monotonic_increasing


def test_paysim_shape_types_fraud_and_balances(raw_dir: Path) -> None:
    import pandas as pd

    df = pd.concat([_read(f) for f in sorted(raw_dir.iterdir())])
    assert set(df["type"]) == set(TRANSACTION_TYPES)
    assert set(df.loc[df["isFraud"] == 1, "type"]) <= set(FRAUD_TYPES)
    share = df["type"].value_counts(normalize=True)
    assert share["CASH_OUT"] == pytest.approx(0.352, abs=0.02)
    assert share["PAYMENT"] == pytest.approx(0.338, abs=0.02)
    assert share["DEBIT"] < 0.02
    assert df["nameOrig"].str.match(r"^C\d+$").all()
    assert df.loc[df["type"] == "PAYMENT", "nameDest"].str.startswith("M").all()
    assert df.loc[df["type"] != "PAYMENT", "nameDest"].str.startswith("C").all()
    # customers repeat (6,000 for 24,000 rows), so aggregation is meaningful
    assert df["nameOrig"].nunique() < 6_001 and df["nameOrig"].value_counts().max() > 1
    # PaySim arithmetic: debits lower the origin balance (floored at 0), CASH_IN raises it
    debit = df[df["type"] != "CASH_IN"]
    np.testing.assert_allclose(
        debit["newbalanceOrig"], np.maximum(debit["oldbalanceOrg"] - debit["amount"], 0), atol=0.02
    )
    cash_in = df[df["type"] == "CASH_IN"]
    np.testing.assert_allclose(
        cash_in["newbalanceOrig"], cash_in["oldbalanceOrg"] + cash_in["amount"], atol=0.02
    )
    # fraud empties the origin account; flags only ever mark fraudulent TRANSFERs over 200k
    fraud = df[df["isFraud"] == 1]
    assert (fraud["newbalanceOrig"] == 0).all()
    flagged = df[df["isFlaggedFraud"] == 1]
    assert ((flagged["type"] == "TRANSFER") & (flagged["isFraud"] == 1) & (flagged["amount"] > 200_000)).all()
    # payments to merchants carry no destination balance
    assert (df.loc[df["type"] == "PAYMENT", ["oldbalanceDest", "newbalanceDest"]] == 0).all().all()


def test_fraud_rate_follows_config(tmp_path: Path) -> None:
    import pandas as pd

    config = GenerateConfig(rows=200_000, seed=3, chunk_rows=50_000)  # default PaySim fraud rate
    df = pd.concat(_read(f) for f in generate(config, tmp_path))
    assert df["isFraud"].mean() == pytest.approx(8_213 / 6_362_620, rel=0.2)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    config = GenerateConfig(rows=3_000, seed=11, chunk_rows=1_000)
    a = generate(config, tmp_path / "a")[0].read_bytes()
    b = generate(config, tmp_path / "b")[0].read_bytes()
    c = generate(GenerateConfig(rows=3_000, seed=12, chunk_rows=1_000), tmp_path / "c")[0].read_bytes()
    assert a == b and a != c


def test_cli_writes_files_and_rejects_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--output", str(tmp_path), "--rows", "500", "--days", "3", "--seed", "1"]) == 0
    assert len(list(tmp_path.glob("paysim-day-*.csv"))) == 3
    assert main(["--output", str(tmp_path / "x"), "--rows", "0"]) == 1
