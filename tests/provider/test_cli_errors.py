"""``pachflow lineage`` / ``pachflow rollback``: bad input, unknown ids and an unreachable MLflow give one
clear line on stderr and exit 1 (or argparse's 2 for a missing required flag)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from pachflow_tools import lineage_cli, rollback_cli
from tests.fixtures.pachd import free_port


@pytest.fixture(autouse=True)
def _restore_mlflow_http_settings(monkeypatch):
    """The CLIs bound MLflow's requests through the environment of their process; undo it after each test."""
    for var in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(var, raising=False)


def test_lineage_rejects_a_malformed_commit(capsys):
    assert lineage_cli.main(["--commit", "no-at-sign", "--no-pachyderm", "--tracking-uri", "http://x"]) == 1
    assert "expected [PROJECT/]REPO@COMMIT_ID" in capsys.readouterr().err


def test_unknown_run_id_names_the_mlflow_server(mlflow_server, capsys):
    uri = mlflow_server.tracking_uri
    assert lineage_cli.main(["--run-id", "0" * 32, "--no-pachyderm", "--tracking-uri", uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pachflow lineage: MLflow (" + uri) and "Traceback" not in err
    model = ["--model-name", "some-model", "--alias", "production"]
    assert rollback_cli.main(["--to-run-id", "0" * 32, *model, "--tracking-uri", uri]) == 1
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


@pytest.mark.parametrize("missing", ["--model-name", "--alias"])
def test_rollback_has_no_default_model_or_alias(missing, capsys):
    args = {"--model-name": "m", "--alias": "a"}
    args.pop(missing)
    flat = [item for pair in args.items() for item in pair]
    with pytest.raises(SystemExit) as exited:
        rollback_cli.main(["--to-run-id", "0" * 32, *flat, "--tracking-uri", "http://127.0.0.1:1"])
    assert exited.value.code == 2
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def test_rollback_with_data_needs_pachd(capsys, mlflow_server):
    argv = ["--to-run-id", "0" * 32, "--model-name", "m", "--alias", "a", "--data", "--no-pachyderm"]
    assert rollback_cli.main([*argv, "--tracking-uri", mlflow_server.tracking_uri]) == 1
    assert "need pachd: drop --no-pachyderm" in capsys.readouterr().err


def test_timeout_must_be_a_positive_number(capsys):
    with pytest.raises(SystemExit):
        lineage_cli.main(
            ["--run-id", "0" * 32, "--no-pachyderm", "--tracking-uri", "http://x", "--timeout", "0"]
        )
    assert "--timeout '0': must be more than 0 seconds" in capsys.readouterr().err


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An address that accepts TCP connections (the kernel completes them) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


COMMANDS = {
    "lineage": (lineage_cli, ["--run-id", "0" * 32, "--no-pachyderm"]),
    "rollback": (rollback_cli, ["--to-run-id", "0" * 32, "--model-name", "m", "--alias", "a"]),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("server", ["nothing listening", "accepts, never answers"])
def test_unreachable_mlflow_gives_up_within_the_timeout_in_one_line(command, server, silent_server, capsys):
    module, argv = COMMANDS[command]
    uri = f"http://127.0.0.1:{free_port()}" if server == "nothing listening" else silent_server
    started = time.monotonic()
    code = module.main([*argv, "--tracking-uri", uri, "--timeout", "2"])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 1 and elapsed < 2 + 3, elapsed
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"pachflow {command}: MLflow at {uri}")
    if server == "nothing listening":
        assert "is not reachable" in err
    else:
        assert "did not answer within 2 s (--timeout)" in err
