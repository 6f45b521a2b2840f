"""MLflow down when training starts: ml_train's datum is retried, then the job fails saying so, quickly.

Real pachd-lite running the project's three specs (split_data, etl with real Spark, ml_train),
small generated data, and MLFLOW_TRACKING_URI pointing at a closed localhost port.
"""

from __future__ import annotations

import pytest

from spark_jobs.generate import GenerateConfig, generate
from tests.fixtures.pachd import free_port

pytestmark = [pytest.mark.spark]

TRIES = 2
# MLflow's own HTTP retries back off for minutes by default; the job must not hang on them.
BOUND_S = 120


def test_mlflow_unreachable_fails_ml_train_after_retries(pipeline_project, tmp_path):
    from pachyderm_sdk.api import pfs, pps

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    def point_at_closed_port(spec):
        spec["transform"]["env"]["MLFLOW_TRACKING_URI"] = uri
        spec["datum_tries"] = TRIES  # the shipped spec says 1; see the report

    client, project = pipeline_project(
        {
            "ml_train": point_at_closed_port,
            "split_data": lambda s: s["transform"]["env"].update(SPLIT_BUCKETS="2"),
        }
    )
    (day,) = generate(GenerateConfig(rows=3000, customers=600, days=1, seed=3, fraud_rate=0.03), tmp_path)
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{project}/raw_data@master")) as c:
        c.put_file_from_bytes(f"/{day.name}", day.read_bytes())
    client.pfs.wait_commit_set(pfs.CommitSet(id=c.id))

    def job(name: str) -> pps.JobInfo:
        ref = pps.Job(pipeline=pps.Pipeline(name=name, project=pfs.Project(name=project)), id=c.id)
        return client.pps.inspect_job(job=ref, wait=True)

    for upstream in ("split_data", "etl"):
        assert job(upstream).state == pps.JobState.JOB_SUCCESS, job(upstream).reason
    train = job("ml_train")
    assert train.state == pps.JobState.JOB_FAILURE
    assert f"MLflow at {uri} is unreachable" in train.reason, train.reason
    assert train.data_failed == 1
    took = train.finished.timestamp() - train.started.timestamp()
    assert took < BOUND_S, f"ml_train took {took:.0f}s to give up on MLflow"

    logs = [m.message for m in client.pps.get_logs(job=pps.Job(
        pipeline=pps.Pipeline(name="ml_train", project=pfs.Project(name=project)), id=c.id))]  # fmt: skip
    unreachable = [m for m in logs if f"MLflow at {uri} is unreachable" in m]
    assert len(unreachable) >= TRIES, logs[-20:]  # once per try
    tries = [m for m in logs if m.startswith("errored running user code after")]  # pachd's worker line
    assert len(tries) == TRIES, logs[-20:]
    # the failed job left no output in ml_train, and the upstream commits stay readable
    out = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{project}/ml_train@{c.id}"))
    assert out.error
    assert list(client.pfs.walk_file(file=pfs.File.from_uri(f"{project}/etl@{c.id}:/")))
