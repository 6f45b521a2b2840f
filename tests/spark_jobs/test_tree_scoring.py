"""The numpy tree walk gives exactly Spark's probabilities (what ml_train's metrics rest on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_jobs.features import FEATURE_COLUMNS, LABEL
from spark_jobs.train import TrainConfig, fit
from spark_jobs.training_data import input_files, prepare_training_data
from spark_jobs.tree_scoring import LEAF, TreeArrays, feature_matrix, score_tables

pytestmark = pytest.mark.spark


def spark_probabilities(spark, model, table: pa.Table) -> np.ndarray:
    from pyspark.ml.functions import vector_to_array

    frame = spark.createDataFrame(table.select([*FEATURE_COLUMNS, LABEL]))
    out = model.transform(frame).select(vector_to_array("probability").alias("p")).toArrow()
    return np.array(out.column("p").to_pylist())


@pytest.fixture(scope="module")
def fitted(spark, etl_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    prepared = prepare_training_data(
        input_files(etl_dir), 3, 0.3, negatives_per_positive=0, scratch_dir=tmp_path_factory.mktemp("sets")
    )
    model = fit(spark.read.parquet(str(prepared.train_path)), TrainConfig(max_depth=5), prepared.counts)
    return model, pq.read_table(prepared.train_path), pq.read_table(prepared.test_path)


def test_probabilities_equal_spark_transform(spark, fitted) -> None:
    model, train, test = fitted
    nodes = TreeArrays.from_spark(model.stages[-1])
    assert len(nodes.feature) == model.stages[-1].numNodes
    assert (nodes.feature != LEAF).sum() > 3, "the fixture should give a tree with several splits"
    for table in (test, train):
        expected = spark_probabilities(spark, model, table)
        got = nodes.predict_proba(feature_matrix(table, FEATURE_COLUMNS))
        np.testing.assert_array_equal(got, expected)
    labels, p_fraud = score_tables(nodes, [test.slice(0, 100), test.slice(100)], FEATURE_COLUMNS, LABEL)
    np.testing.assert_array_equal(labels, test.column(LABEL).to_numpy().astype(int))
    np.testing.assert_array_equal(p_fraud, spark_probabilities(spark, model, test)[:, 1])


def test_rows_exactly_on_a_threshold_go_left_as_in_spark(spark, fitted) -> None:
    model, _, test = fitted
    nodes = TreeArrays.from_spark(model.stages[-1])
    base = test.slice(0, 1)
    rows = []
    for f, t in zip(nodes.feature, nodes.threshold, strict=True):
        if f == LEAF:
            continue
        for value in (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)):
            columns = {c: base.column(c).to_numpy().astype(float) for c in [*FEATURE_COLUMNS, LABEL]}
            columns[FEATURE_COLUMNS[f]] = np.array([value])
            rows.append(pa.table(columns))
    table = pa.concat_tables(rows)
    np.testing.assert_array_equal(
        nodes.predict_proba(feature_matrix(table, FEATURE_COLUMNS)), spark_probabilities(spark, model, table)
    )


def test_a_tree_that_is_one_leaf(spark) -> None:
    """All rows of one class: Spark fits a single leaf, every row gets its class distribution."""
    table = pa.table({**{c: np.arange(20, dtype=float) for c in FEATURE_COLUMNS}, LABEL: np.zeros(20)})
    table = pa.concat_tables(
        [table, table.slice(0, 2).set_column(len(FEATURE_COLUMNS), LABEL, pa.array([1.0, 1.0]))]
    )
    model = fit(
        spark.createDataFrame(table),
        TrainConfig(max_depth=2, min_instances_per_node=50),
        {"train_positives": 2, "train_negatives": 20},
    )
    nodes = TreeArrays.from_spark(model.stages[-1])
    assert list(nodes.feature) == [LEAF]
    np.testing.assert_array_equal(
        nodes.predict_proba(feature_matrix(table, FEATURE_COLUMNS)), spark_probabilities(spark, model, table)
    )
