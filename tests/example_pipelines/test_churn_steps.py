"""The churn example's generator, features join and trainer, run on generated data (no services)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from example_pipelines.churn import FEATURE_COLUMNS, KEY, LABEL, features, generate, train


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("churn-data")
    assert generate.main(["--output", str(out), "--days", "2", "--customers", "300"]) == 0
    return out


def test_generator_is_deterministic_and_a_new_day_only_adds_files(data, tmp_path):
    assert sorted(p.name for p in (data / "events").iterdir()) == ["2026-01-01.csv", "2026-01-02.csv"]
    assert generate.main(["--output", str(tmp_path), "--days", "3", "--customers", "300"]) == 0
    for kind in ("events", "labels"):
        for day in ("2026-01-01.csv", "2026-01-02.csv"):
            assert (tmp_path / kind / day).read_bytes() == (data / kind / day).read_bytes()
        assert (tmp_path / kind / "2026-01-03.csv").exists()
    with open(data / "labels" / "2026-01-01.csv") as f:
        labels = list(csv.DictReader(f))
    assert len(labels) == 300 and 0.2 < sum(int(r[LABEL]) for r in labels) / 300 < 0.6
    # a different seed is different data
    assert generate.main(["--output", str(tmp_path / "other"), "--days", "1", "--customers", "300",
                          "--seed", "8"]) == 0  # fmt: skip
    assert (tmp_path / "other" / "events" / "2026-01-01.csv").read_bytes() != (
        data / "events" / "2026-01-01.csv"
    ).read_bytes()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_features_join_per_customer(tmp_path):
    _write(
        tmp_path / "events" / "d1.csv",
        "customer_id,ts,event,amount\n"
        "a,2026-01-01T10:05:00Z,login,0\n"
        "a,2026-01-01T10:50:00Z,purchase,12.5\n"
        "a,2026-01-02T08:00:00Z,support_ticket,0\n"
        "x,2026-01-01T09:00:00Z,login,0\n",  # no label: dropped
    )
    _write(tmp_path / "labels" / "d1.csv", "customer_id,churned\na,0\nb,1\n")  # b: no events
    _write(tmp_path / "events" / "d2.csv", "customer_id,ts,event,amount\n")  # no labels file: not joined
    written = features.build(tmp_path / "events", tmp_path / "labels", tmp_path / "out")
    assert written == [tmp_path / "out" / "d1.csv"]
    table = pd.read_csv(written[0]).set_index(KEY)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", list(FEATURE_COLUMNS)].tolist() == [3, 1, 1, 1, 12.5, 2]
    assert table.loc["b", list(FEATURE_COLUMNS)].tolist() == [0, 0, 0, 0, 0, 0]
    assert table[LABEL].tolist() == [0, 1] and set(table["cohort"]) == {"d1"}


@pytest.mark.parametrize(
    ("events", "labels", "message"),
    [
        ("customer_id,ts,amount\na,2026-01-01T00:00:00Z,0\n", "customer_id,churned\na,0\n",
         "missing column(s) ['event']"),
        ("customer_id,ts,event,amount\na,2026-01-01T00:00:00Z,refund,0\n", "customer_id,churned\na,0\n",
         "unknown event type(s) ['refund']"),
        ("customer_id,ts,event,amount\na,yesterday,login,0\n", "customer_id,churned\na,0\n",
         "unparseable ts on line(s) [2]"),
        ("customer_id,ts,event,amount\n", "customer_id,churned\na,0\na,1\n", "'a' is labelled more than once"),
        ("customer_id,ts,event,amount\n", "customer_id,churned\na,2\n", "must be 0 or 1"),
    ],
)  # fmt: skip
def test_features_refuse_bad_input_naming_the_file(tmp_path, events, labels, message):
    _write(tmp_path / "events" / "d1.csv", events)
    _write(tmp_path / "labels" / "d1.csv", labels)
    with pytest.raises(features.FeaturesError) as exc:
        features.build(tmp_path / "events", tmp_path / "labels", tmp_path / "out")
    assert message in str(exc.value) and "d1.csv" in str(exc.value)


def test_features_without_a_common_day_name_both_folders(tmp_path):
    _write(tmp_path / "events" / "d1.csv", "customer_id,ts,event,amount\n")
    _write(tmp_path / "labels" / "d2.csv", "customer_id,churned\n")
    assert features.main(["--events", str(tmp_path / "events"), "--labels", str(tmp_path / "labels"),
                          "--output", str(tmp_path / "out")]) == 1  # fmt: skip
    with pytest.raises(features.FeaturesError, match="no day has both.*d1.csv.*d2.csv"):
        features.build(tmp_path / "events", tmp_path / "labels", tmp_path / "out")


def test_trainer_learns_churn_and_keeps_test_customers_fixed(data, tmp_path):
    features.build(data / "events", data / "labels", tmp_path / "features")
    table = train.load_features(tmp_path / "features")
    assert len(table) == 600
    model, scores = train.train(table, train.TrainConfig())
    assert scores["roc_auc"] > 0.72, scores  # the generator's signal is learnable...
    assert scores["roc_auc"] < 0.99, scores  # ...but not trivially
    assert scores["rows_train"] + scores["rows_test"] == 600
    assert 0.15 < scores["rows_test"] / 600 < 0.35
    # day 1's customers land on the same side whether or not day 2 is there
    first_day = table[table["cohort"] == "2026-01-01"]
    assert (
        train.test_mask(first_day[KEY], 0.25, 7) == train.test_mask(table[KEY], 0.25, 7)[: len(first_day)]
    ).all()
    assert model.predict_proba(table[list(FEATURE_COLUMNS)].head(3)).shape == (3, 2)


def test_trainer_refuses_bad_input_and_settings(tmp_path):
    with pytest.raises(train.TrainingError, match="no feature files"):
        train.load_features(tmp_path)
    _write(tmp_path / "a.csv", "customer_id,n_events\nx,1\n")
    with pytest.raises(train.TrainingError, match=r"a.csv: missing column\(s\)"):
        train.load_features(tmp_path)
    with pytest.raises(train.TrainingError, match="TEST_FRACTION"):
        train.TrainConfig(test_fraction=1.5)
    one_class = pd.DataFrame({KEY: [f"c{i}" for i in range(40)], LABEL: 0,
                              **{c: range(40) for c in FEATURE_COLUMNS}})  # fmt: skip
    with pytest.raises(train.TrainingError, match="only one class"):
        train.train(one_class, train.TrainConfig())


def test_trainer_options_default_to_the_pipeline_env(monkeypatch):
    monkeypatch.setenv("LOGREG_C", "0.3")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "churn-x")
    args = train.build_parser().parse_args(["--input", "/pfs/features", "--output", "/pfs/out"])
    assert (args.logreg_c, args.experiment, args.max_iter) == (0.3, "churn-x", 200)


def test_trainer_names_a_bad_env_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("MAX_ITER", "many")
    with pytest.raises(train.TrainingError, match="MAX_ITER='many' is not a valid int"):
        train.build_parser()
    assert train.main(["--input", str(tmp_path), "--output", str(tmp_path / "out")]) == 1
