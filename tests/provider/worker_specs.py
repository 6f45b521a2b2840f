"""A two-input graph for lineage tests: ``events`` and ``labels`` joined into ``features``, then a
trainer that uses ``pachflow.worker.pachyderm_run``, all in their own Pachyderm project.

Built straight through the SDK (project, repos, pushes, pipelines), so it exercises only the
lineage side. The trainer passes no output directory: ``pachyderm_run``'s ``/pfs/out`` default
must find pachd-lite's sandbox by itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pachyderm_sdk.api import pfs, pps

from tests.fixtures.pachd import unique_name

# Each datum holds one matching file of each input; write them side by side.
JOIN = r"""
import pathlib
for name in ({a!r}, {b!r}):
    for p in pathlib.Path('/pfs/' + name).glob('*.csv'):
        (pathlib.Path('/pfs/out') / (name + '-' + p.name)).write_text(p.read_text())
"""

WORKER_TRAIN = r"""
import os, pathlib, mlflow
from pachflow.worker import pachyderm_run
rows = sum(len(p.read_text().splitlines()) for p in pathlib.Path(os.environ[{inp!r}]).rglob('*') if p.is_file())
with pachyderm_run() as run:
    mlflow.log_metric('rows', rows)
    mlflow.log_text('artifact_path: model\nflavors: {{}}\n', 'model/MLmodel')
"""


@dataclass(frozen=True)
class JoinGraph:
    project: str
    events: str
    labels: str
    features: str
    train: str
    events_commit: str
    labels_commit: str
    train_commit: str


def _push(client, project: str, repo: str, files: dict[str, str]) -> str:
    branch = pfs.Branch(
        repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), name="master"
    )
    with client.pfs.commit(branch=branch) as commit:
        for path, text in files.items():
            commit.put_file_from_bytes(path, text.encode())
    return commit.id


def _pipeline(client, spec: dict) -> None:
    client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))


def build_join_graph(client, tracking_uri: str, experiment: str) -> JoinGraph:
    """Create the graph in a fresh project, push one commit to each input, and wait for training."""
    project = unique_name("research")
    events, labels = unique_name("events"), unique_name("labels")
    features, train = unique_name("features"), unique_name("churn")
    client.pfs.create_project(project=pfs.Project(name=project))
    for repo in (events, labels):
        client.pfs.create_repo(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)))
    events_commit = _push(client, project, events, {"/a.csv": "id,x\n1,2\n", "/b.csv": "id,x\n3,4\n"})
    labels_commit = _push(client, project, labels, {"/a.csv": "id,y\n1,0\n", "/b.csv": "id,y\n3,1\n"})
    join = [
        {"pfs": {"project": project, "repo": repo, "glob": "/(*).csv", "join_on": "$1"}}
        for repo in (events, labels)
    ]
    _pipeline(
        client,
        {
            "pipeline": {"name": features, "project": {"name": project}},
            "transform": {"cmd": ["python3", "-c", JOIN.format(a=events, b=labels)], "image": "tests"},
            "input": {"join": join},
            "datum_tries": 1,
        },
    )
    _pipeline(
        client,
        {
            "pipeline": {"name": train, "project": {"name": project}},
            "transform": {
                "cmd": ["python3", "-c", WORKER_TRAIN.format(inp=features)],
                "image": "tests",
                "env": {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_EXPERIMENT_NAME": experiment},
            },
            "input": {"pfs": {"project": project, "repo": features, "glob": "/"}},
            "datum_tries": 1,
        },
    )
    branch = pfs.Branch(
        repo=pfs.Repo(name=train, type="user", project=pfs.Project(name=project)), name="master"
    )
    head = client.pfs.inspect_branch(branch=branch).head
    job = client.pps.inspect_job(
        job=pps.Job(pipeline=pps.Pipeline(name=train, project=pfs.Project(name=project)), id=head.id),
        wait=True,
    )
    assert job.state == pps.JobState.JOB_SUCCESS, (job.state, job.reason)
    return JoinGraph(project, events, labels, features, train, events_commit, labels_commit, head.id)


def read_file(client, project: str, repo: str, commit_id: str, path: str) -> bytes:
    return client.pfs.pfs_file(pfs.File.from_uri(f"{project}/{repo}@{commit_id}:{path}")).read()


def list_paths(client, project: str, repo: str, commit_id: str) -> set[str]:
    commit = pfs.Commit(
        repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), id=commit_id
    )
    return {i.file.path for i in client.pfs.list_file(file=pfs.File(commit=commit, path="/"))}
