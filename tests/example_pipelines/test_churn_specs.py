"""The churn example's pipeline specs: valid Pachyderm 2.12 specs, and ``features`` runs on pachd-lite."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from pachyderm_sdk.api import pfs, pps

from example_pipelines.churn import KEY, generate
from pachd_lite.pps.spec import parse_create_pipeline_request, validate_request
from tests.fixtures.pachd import unique_name
from tests.spark_jobs.test_specs import unknown_fields

SPECS = Path(__file__).resolve().parents[2] / "example_pipelines" / "churn" / "specs"


def _raw(name: str) -> dict:
    return json.loads((SPECS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["features", "churn_model"])
def test_spec_is_valid_and_its_command_parses(name):
    raw = _raw(name)
    spec = parse_create_pipeline_request(json.dumps(raw))
    validate_request(spec)
    assert unknown_fields(raw, spec) == []
    assert (spec.pipeline.name, spec.pipeline.project.name) == (name, "research")
    cmd = spec.transform.cmd
    assert cmd[:3] == [
        "python3",
        "-m",
        f"example_pipelines.churn.{'train' if name == 'churn_model' else name}",
    ]
    args = importlib.import_module(cmd[2]).build_parser().parse_args(cmd[3:])
    assert str(args.output) == "/pfs/out"


def test_specs_join_events_and_labels_per_day_then_train_on_everything():
    features = parse_create_pipeline_request(json.dumps(_raw("features")))
    joined = [(i.pfs.repo, i.pfs.glob, i.pfs.join_on) for i in features.input.join]
    assert joined == [("events", "/(*).csv", "$1"), ("labels", "/(*).csv", "$1")]
    assert all(not i.pfs.project for i in features.input.join)  # inputs live in the pipeline's project
    model = parse_create_pipeline_request(json.dumps(_raw("churn_model")))
    assert (model.input.pfs.repo, model.input.pfs.glob) == ("features", "/")
    assert model.transform.env["MLFLOW_EXPERIMENT_NAME"] and "MLFLOW_TRACKING_URI" not in model.transform.env


def _push_days(client, project: str, data: Path, days: list[str]) -> str:
    """Both repos' files for ``days`` in one transaction, so one commit set; returns its id."""
    branches = {
        repo: pfs.Branch(
            repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), name="master"
        )
        for repo in ("events", "labels")
    }
    with client.transaction.transaction():
        commits = {repo: client.pfs.start_commit(branch=b) for repo, b in branches.items()}
    for repo, commit in commits.items():
        for day in days:
            with open(data / repo / f"{day}.csv", "rb") as f:
                client.pfs.put_file_from_file(commit=commit, path=f"/{day}.csv", file=f)
        client.pfs.finish_commit(commit=commit)
    assert commits["events"].id == commits["labels"].id
    return commits["events"].id


def test_features_pipeline_joins_per_day_on_pachd_lite(pachd_server, tmp_path):
    client = pachd_server.client()
    project = unique_name("research")
    generate.main(["--output", str(tmp_path / "data"), "--days", "2", "--customers", "50"])
    client.pfs.create_project(project=pfs.Project(name=project))
    for repo in ("events", "labels"):
        client.pfs.create_repo(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)))
    spec = _raw("features")
    spec["pipeline"]["project"]["name"] = project
    client.pps.create_pipeline(**_request(spec))

    def run(days: list[str]) -> tuple[pps.JobInfo, Path]:
        commit_set = _push_days(client, project, tmp_path / "data", days)
        out = pfs.Commit(repo=pfs.Repo(name="features", type="user", project=pfs.Project(name=project)),
                         id=commit_set)  # fmt: skip
        info = client.pfs.wait_commit(out)
        assert not info.error, info.error
        job = client.pps.inspect_job(
            job=pps.Job(
                pipeline=pps.Pipeline(name="features", project=pfs.Project(name=project)), id=commit_set
            )
        )
        folder = tmp_path / f"out-{commit_set}"
        for fi in client.pfs.walk_file(file=pfs.File(commit=out, path="/")):
            if fi.file_type == pfs.FileType.FILE:
                target = folder / fi.file.path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                with client.pfs.pfs_file(file=fi.file) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return job, folder

    job, out = run(["2026-01-01"])
    assert str(job.state) == str(pps.JobState.JOB_SUCCESS), job.reason
    assert (job.data_processed, job.data_skipped) == (1, 0)
    assert sorted(p.name for p in out.iterdir()) == ["2026-01-01.csv"]
    day1 = pd.read_csv(out / "2026-01-01.csv")
    assert len(day1) == 50 and day1[KEY].str.startswith("c20260101-").all()

    job, out = run(["2026-01-02"])  # a second day: one new datum, the first day skipped
    assert (job.data_processed, job.data_skipped, job.data_total) == (1, 1, 2)
    assert sorted(p.name for p in out.iterdir()) == ["2026-01-01.csv", "2026-01-02.csv"]
    assert pd.read_csv(out / "2026-01-01.csv").equals(day1)


def _request(spec: dict) -> dict:
    """CreatePipelineRequest fields of a spec, as pachyderm_sdk's create_pipeline takes them."""
    request = pps.CreatePipelineRequest().from_dict(spec)
    return {name: getattr(request, name) for name in ("pipeline", "description", "transform", "input",
                                                       "parallelism_spec", "resource_requests", "datum_tries")}  # fmt: skip
