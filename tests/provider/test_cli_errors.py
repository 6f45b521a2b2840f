"""``pachflow lineage`` / ``pachflow rollback``: bad input and unknown ids give one clear line, exit 1."""

from __future__ import annotations

from pachflow_tools import lineage_cli, rollback_cli


def test_lineage_rejects_a_malformed_commit(capsys):
    assert lineage_cli.main(["--commit", "no-at-sign", "--no-pachyderm", "--tracking-uri", "http://x"]) == 1
    assert "expected REPO@COMMIT_ID" in capsys.readouterr().err


def test_unknown_run_id_names_the_mlflow_server(mlflow_server, capsys):
    uri = mlflow_server.tracking_uri
    assert lineage_cli.main(["--run-id", "0" * 32, "--no-pachyderm", "--tracking-uri", uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pachflow lineage: MLflow (" + uri) and "Traceback" not in err
    assert rollback_cli.main(["--to-run-id", "0" * 32, "--tracking-uri", uri]) == 1
    assert capsys.readouterr().err.startswith("pachflow rollback: MLflow (" + uri)


def test_run_without_recorded_lineage_is_explained(mlflow_server, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.tracking_uri)
    exp = client.create_experiment("cli-errors-unrecorded")
    run = client.create_run(exp)
    code = lineage_cli.main(
        ["--run-id", run.info.run_id, "--no-pachyderm", "--tracking-uri", mlflow_server.tracking_uri]
    )
    assert code == 1
    assert "has no pachyderm.commit tag" in capsys.readouterr().err
