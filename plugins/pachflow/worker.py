"""Training code inside a Pachyderm pipeline: one MLflow run per job, tagged per the lineage contract.

Importable without Airflow (a pipeline worker needs only pachyderm_sdk and mlflow)::

    from pachflow.worker import pachyderm_run

    with pachyderm_run("churn") as run:      # experiment: argument, else MLFLOW_EXPERIMENT_NAME
        model = fit(...)
        mlflow.sklearn.log_model(model, name="model")

The run is named ``<pipeline>@<job>`` and tagged with the job, pipeline, project, output commit
and the commit of every upstream repo (read from pachd when it answers within seconds, else the
direct inputs' ``<input>_COMMIT`` variables). On a normal exit ``<output_dir>/<run_id>`` and
``<output_dir>/mlflow_run.json`` are written, which the Airflow lineage task reads; on an
exception the run ends FAILED and nothing is written.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pachflow import contract
from pachflow.exceptions import ConfigurationError

if TYPE_CHECKING:
    from mlflow import ActiveRun, MlflowClient

log = logging.getLogger(__name__)

PFS_ROOT = "/pfs"
PACHD_CONNECT_TIMEOUT_S = 3.0
PROVENANCE_TIMEOUT_S = 20.0
# Variables pachd sets that end in _COMMIT but name no input.
_NOT_INPUTS = {"PPS_SPEC_COMMIT"}


@dataclass(frozen=True)
class PachydermContext:
    """What the worker environment says about the job; every field is empty outside a pipeline."""

    pipeline: str = ""
    project: str = ""
    job_id: str = ""
    output_commit: str = ""
    spec_commit: str = ""
    address: str = ""
    input_commits: dict[str, str] = field(default_factory=dict)

    @property
    def in_pipeline(self) -> bool:
        return bool(self.pipeline and self.job_id)


def pachd_address(env: Mapping[str, str] | None = None) -> str:
    """``host:port`` of pachd: the in-cluster peer service (set in workers), else PACHD_ADDRESS."""
    env = os.environ if env is None else env
    host, port = env.get("PACHD_PEER_SERVICE_HOST", ""), env.get("PACHD_PEER_SERVICE_PORT", "")
    if host and port:
        return f"{host}:{port}"
    address = env.get("PACHD_ADDRESS", "")
    return address.split("://", 1)[-1].rstrip("/")


def input_commits(env: Mapping[str, str], input_names: Sequence[str] | None = None) -> dict[str, str]:
    """``{input: commit}`` from ``<input>_COMMIT``; without names, every input pachd announced
    (a ``<name>_COMMIT`` whose ``<name>`` variable, the datum path, is set too)."""
    if input_names is not None:
        return {n: env[f"{n}_COMMIT"] for n in input_names if env.get(f"{n}_COMMIT")}
    return {
        key[: -len("_COMMIT")]: value
        for key, value in sorted(env.items())
        if key.endswith("_COMMIT") and key not in _NOT_INPUTS and value and key[: -len("_COMMIT")] in env
    }


def pachyderm_context(
    input_names: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> PachydermContext:
    """Read the worker env (PPS_*, PACH_*, ``<input>_COMMIT``); ``input_names`` None = every input."""
    env = os.environ if env is None else env
    pipeline = env.get("PPS_PIPELINE_NAME", "")
    return PachydermContext(
        pipeline=pipeline,
        project=env.get("PPS_PROJECT_NAME", "") or ("default" if pipeline else ""),
        job_id=env.get("PACH_JOB_ID", ""),
        output_commit=env.get("PACH_OUTPUT_COMMIT_ID", "") or env.get("PACH_JOB_ID", ""),
        spec_commit=env.get("PPS_SPEC_COMMIT", ""),
        address=pachd_address(env),
        input_commits=input_commits(env, input_names),
    )


def airflow_ids(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(dag id, dag run id) when Airflow (or the apply operator) put them in the environment."""
    env = os.environ if env is None else env
    dag_id = env.get("AIRFLOW_CTX_DAG_ID") or env.get("PACHFLOW_AIRFLOW_DAG_ID") or ""
    run_id = env.get("AIRFLOW_CTX_DAG_RUN_ID") or env.get("PACHFLOW_AIRFLOW_RUN_ID") or ""
    return dag_id, run_id


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=PACHD_CONNECT_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False


def provenance_from_pachd(
    ctx: PachydermContext, timeout_s: float = PROVENANCE_TIMEOUT_S
) -> dict[str, str] | None:
    """``{repo key: commit}`` of every upstream user repo of the job's output commit; None if pachd
    is not reachable or does not answer within ``timeout_s`` (logged)."""
    if not (ctx.address and ctx.pipeline and ctx.output_commit):
        return None
    if not _reachable(ctx.address):
        log.warning("pachd at %s is not reachable: provenance tags come from <input>_COMMIT", ctx.address)
        return None
    result: dict[str, str] = {}
    errors: list[BaseException] = []

    def walk() -> None:
        try:
            from pachyderm_sdk import Client

            client = Client.from_pachd_address(ctx.address)
            graph = contract.walk_provenance(client, ctx.project, ctx.pipeline, ctx.output_commit)
            result.update(graph.commits(ctx.project))
        except Exception as exc:  # any RPC failure only costs the upstream tags
            errors.append(exc)

    thread = threading.Thread(target=walk, name="provenance-walk", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        log.warning("reading provenance from pachd at %s took over %.0fs; skipped", ctx.address, timeout_s)
        return None
    if errors:
        log.warning("could not read provenance from pachd at %s: %s", ctx.address, errors[0])
        return None
    result.pop(ctx.pipeline, None)
    return result


def run_tags(ctx: PachydermContext, provenance: Mapping[str, str] | None = None) -> dict[str, str]:
    """The contract's tags for a run of this job: provenance from pachd, else the direct inputs
    (``<input>_COMMIT``; an input named apart from its repo is then tagged by its input name)."""
    dag_id, airflow_run_id = airflow_ids()
    return contract.lineage_tags(
        address=ctx.address,
        project=ctx.project,
        pipeline=ctx.pipeline,
        job=ctx.job_id,
        commit=ctx.output_commit,
        provenance=ctx.input_commits if provenance is None else provenance,
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
    )


def resolve_output_dir(output_dir: str | os.PathLike[str]) -> Path:
    """``output_dir`` as given, or, when it is a missing ``/pfs/...`` path, the same path under the
    working directory (pachd-lite runs user code in a sandbox holding ``pfs/``)."""
    path = Path(output_dir)
    text = path.as_posix()
    if path.exists() or not (text == PFS_ROOT or text.startswith(PFS_ROOT + "/")):
        return path
    local = Path.cwd() / text.lstrip("/")
    return local if (Path.cwd() / "pfs").is_dir() else path


def last_model_uri(mlflow_client: MlflowClient, run_id: str, experiment_id: str) -> tuple[str, str]:
    """(model URI, model id) of the last model logged in the run; ("", "") if none.

    A LoggedModel (MLflow 3) first; else a top-level artifact folder holding an ``MLmodel``.
    """
    models = mlflow_client.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
        max_results=1,
    )
    if models:
        return models[0].model_uri, models[0].model_id
    for folder in reversed(mlflow_client.list_artifacts(run_id)):
        if folder.is_dir and any(
            a.path.rsplit("/", 1)[-1] == "MLmodel" for a in mlflow_client.list_artifacts(run_id, folder.path)
        ):
            return f"runs:/{run_id}/{folder.path}", ""
    return "", ""


def write_run_record(output_dir: Path, record: Mapping[str, Any]) -> None:
    """The empty ``<run_id>`` file and ``mlflow_run.json`` (written whole, then renamed)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / record["run_id"]).touch()
    tmp = output_dir / f".{contract.RUN_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(output_dir / contract.RUN_FILE)


@contextmanager
def _mlflow_target(tracking_uri: str, experiment: str) -> Iterator[Any]:
    """Point MLflow's fluent API at ``tracking_uri``/``experiment``; yield the experiment.

    MLflow keeps both in process globals and in os.environ; they are restored afterwards so
    the caller's process is not left talking to this server.
    """
    import mlflow
    import mlflow.tracking.fluent as fluent

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
    saved_active = fluent._active_experiment_id  # no public way to read/reset it
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield mlflow.set_experiment(experiment)
    finally:
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
        fluent._active_experiment_id = saved_active
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def pachyderm_run(
    experiment: str | None = None,
    *,
    run_name: str | None = None,
    output_dir: str | os.PathLike[str] = "/pfs/out",
    tags: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
    context: PachydermContext | None = None,
) -> Iterator[ActiveRun]:
    """Start the MLflow run of this Pachyderm job and yield it (see the module docstring).

    :param experiment: MLflow experiment name; default MLFLOW_EXPERIMENT_NAME.
    :param run_name: default ``<pipeline>@<job>`` (MLflow's generated name outside a pipeline).
    :param output_dir: where the run record goes; ``/pfs/out`` is found in pachd-lite's sandbox too.
    :param tags: extra run tags; the contract's own tags win over them.
    :param tracking_uri: default MLFLOW_TRACKING_URI.
    :param context: the job's facts; default read from the environment.
    """
    import mlflow

    experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
    if not experiment:
        raise ConfigurationError(
            "no MLflow experiment: pass experiment= to pachyderm_run or set MLFLOW_EXPERIMENT_NAME"
        )
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not tracking_uri:
        raise ConfigurationError("MLFLOW_TRACKING_URI is not set: point it at the MLflow tracking server")
    ctx = context or pachyderm_context()
    provenance = provenance_from_pachd(ctx)
    if ctx.in_pipeline:
        where = "pachd" if provenance is not None else "<input>_COMMIT variables"
        log.info("provenance of %s@%s from %s", ctx.pipeline, ctx.job_id, where)
    all_tags = {**(tags or {}), **run_tags(ctx, provenance)}
    if run_name is None and ctx.in_pipeline:
        run_name = f"{ctx.pipeline}@{ctx.job_id}"
    out = resolve_output_dir(output_dir)
    with (
        _mlflow_target(tracking_uri, experiment) as exp,
        mlflow.start_run(run_name=run_name, tags=all_tags) as run,
    ):
        yield run
        run_id = run.info.run_id
        client = mlflow.MlflowClient(tracking_uri)
        model_uri, model_id = last_model_uri(client, run_id, exp.experiment_id)
        record = {
            "run_id": run_id,
            "experiment_id": exp.experiment_id,
            "experiment_name": experiment,
            "tracking_uri": tracking_uri,
            "model_uri": model_uri,
            "model_id": model_id,
            "metrics": client.get_run(run_id).data.metrics,
        }
        write_run_record(out, record)
        log.info("MLflow run %s recorded in %s", run_id, out / contract.RUN_FILE)
