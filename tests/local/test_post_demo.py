"""After `make demo`: the follow-up commands it prints work as printed from a new shell.

A new shell here is a subprocess with a clean environment: no virtualenv on PATH, no Airflow
connection, no PACHD_ADDRESS/MLFLOW_TRACKING_URI. Only PACHFLOW_LOCAL_DIR points at the test's
own stack (the default, the checkout's .local/, may hold a developer's demo), and PYTHONPATH is
kept when the test run sets it (a worktree sharing another checkout's virtualenv).
The stack holds what the demo leaves behind, in small: raw_data, a split_data pipeline that
writes reject summaries, and a recorded lineage of an MLflow run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from pachflow_tools import demo
from pachflow_tools.local.settings import project_root

COPY = "import shutil; shutil.copytree('/pfs/raw_data', '/pfs/out', dirs_exist_ok=True)"
SUMMARY = {"file": "raw_data@x:/day1.csv", "rows": 2, "valid": 1, "rejected": 1, "reasons": {"empty row": 1},
           "first": [{"line": 3, "reason": "empty row (every field empty)"}], "rejects_file": "/rejects/day1.csv"}  # fmt: skip


def clean_env(state_dir: Path, home: Path) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "PACHFLOW_LOCAL_DIR": str(state_dir)}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        shell=True,
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _demo_leftovers(pachd_port: int, tracking_uri: str, tmp_path: Path) -> tuple[str, str]:
    """raw_data -> split_data (a copy step) with a reject summary, and the lineage of one MLflow run."""
    from mlflow import MlflowClient
    from pachyderm_sdk import Client
    from pachyderm_sdk.api import pfs

    from pachflow.lineage import record_lineage
    from pachflow.upload import RepoUpload, plan_upload, push_commit_set

    mlflow_client = MlflowClient(tracking_uri)
    run = mlflow_client.create_run(mlflow_client.create_experiment("post-demo"))
    mlflow_client.log_text(run.info.run_id, "artifact_path: model\nflavors: {}\n", "model/MLmodel")
    mlflow_client.set_terminated(run.info.run_id)
    data = tmp_path / "data"
    (data / "rejects").mkdir(parents=True)
    (data / "day1.csv").write_text("a,b\n1,2\n,\n")
    (data / "rejects" / "day1.json").write_text(json.dumps(SUMMARY))
    (data / "mlflow_run.json").write_text(json.dumps({"run_id": run.info.run_id}))

    client = Client(host="127.0.0.1", port=pachd_port)
    raw = pfs.Repo(name="raw_data", type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=raw)
    spec = {
        "pipeline": {"name": "split_data", "project": {"name": "default"}},
        "transform": {"cmd": ["python3", "-c", COPY], "image": "pachflow-tests"},
        "input": {"pfs": {"repo": "raw_data", "glob": "/"}},
    }
    client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    result = push_commit_set(
        client, [RepoUpload(pfs.Branch(repo=raw, name="master"), plan_upload(str(data)))]
    )
    commit = result.commit_id
    split = pfs.Commit(
        repo=pfs.Repo(name="split_data", type="user", project=pfs.Project(name="default")), id=commit
    )
    deadline = time.monotonic() + 120
    while not client.pfs.inspect_commit(commit=split).finished.timestamp() > 0:
        assert time.monotonic() < deadline, "split_data did not finish"
        time.sleep(0.5)
    record_lineage(client, mlflow_client, project="default", address=f"grpc://127.0.0.1:{pachd_port}",
                   tracking_uri=tracking_uri, commit_set=commit, dag_id="fraud_detection", airflow_run_id="manual",
                   train_repo="split_data", model_name="post-demo-model")  # fmt: skip
    return run.info.run_id, commit


def test_follow_up_commands_work_as_printed_from_a_new_shell(local_cli, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(local_cli.state_dir, home)
    commands = demo.follow_up_commands("0" * 32, "1" * 32)
    assert commands[0].split()[0].endswith("pachflow")

    # no stack yet: the error says how to start one
    result = shell(commands[1], env)
    assert result.returncode == 1
    assert "no running local stack: start the local stack with `make demo`" in result.stderr, result.stderr

    assert local_cli.up().returncode == 0
    tracking_uri = f"http://127.0.0.1:{local_cli.mlflow_port}"
    run_id, commit = _demo_leftovers(local_cli.pachd_port, tracking_uri, tmp_path)

    commands = demo.follow_up_commands(run_id, commit)
    outputs = []
    for command in commands:
        result = shell(command, env)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    assert run_id in outputs[0] and f"raw_data@{commit}" in outputs[0]
    assert run_id in outputs[1]
    assert "1 of 2 rows rejected" in outputs[2] and "line 3: empty row (every field empty)" in outputs[2]

    # an unknown commit or repo: one line saying which, no traceback, no fallback search
    pachflow = commands[0].split()[0]
    result = shell(f"{pachflow} lineage --commit raw_data@{'2' * 32}", env)
    assert result.returncode == 1
    assert result.stderr.strip() == f"pachflow lineage: default/raw_data has no commit or branch '{'2' * 32}'"
    result = shell(f"{pachflow} rollback --to-commit nosuch@master --model-name m --alias a", env)
    assert result.returncode == 1
    assert result.stderr.strip() == "pachflow rollback: Pachyderm project 'default' has no repo 'nosuch'"
