"""MLflow plumbing for the Spark trainer: fail fast on a bad server, dataset input, Spark LoggedModel."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.data.dataset import Dataset

    from pachflow.worker import PachydermContext

CHECK_TIMEOUT_S = 5.0


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking server is not configured or does not answer."""


def limit_http_retries() -> None:
    """MLflow retries HTTP calls with back-off for minutes by default; a pipeline should fail fast."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")


def check_tracking_server(uri: str | None, experiment_name: str) -> str:
    """Return ``uri`` if an MLflow server answers there within seconds, else TrackingUnavailable."""
    if not uri:
        raise TrackingUnavailable(
            "MLFLOW_TRACKING_URI is not set: point it at the MLflow tracking server (e.g. http://localhost:5000)"
        )
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme not in ("http", "https"):
        return uri  # file:, sqlite:, databricks... need no server check here
    query = urllib.parse.urlencode({"experiment_name": experiment_name})
    url = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name?{query}"
    try:
        with urllib.request.urlopen(url, timeout=CHECK_TIMEOUT_S):
            return uri
    except urllib.error.HTTPError as exc:
        if exc.code < 500:  # 404 (no such experiment yet), 401/403: the server is there
            return uri
        raise TrackingUnavailable(f"MLflow at {uri} is unreachable: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(f"MLflow at {uri} is unreachable: {reason}") from exc


def local_digest(files: list[Path]) -> str:
    """A content-change fingerprint of local files (names, sizes, mtimes) for runs outside Pachyderm."""
    h = hashlib.sha256()
    for f in sorted(files):
        stat = f.stat()
        h.update(f"{f}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def training_dataset(
    ctx: PachydermContext, input_name: str, input_root: Path, files: list[Path], schema: Any
) -> Dataset:
    """The input as an MLflow dataset: ``pachyderm://…@<commit>`` with digest = commit id in a
    pipeline; the local directory (digest from file metadata) otherwise."""
    from mlflow.data.meta_dataset import MetaDataset

    commit = ctx.input_commits.get(input_name, "")
    if commit and ctx.address:
        from pachflow.mlflow_source import PachydermDatasetSource

        source = PachydermDatasetSource(ctx.address, ctx.project or "default", input_name, commit)
        return MetaDataset(source=source, name=input_name, digest=commit, schema=schema)
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    source = resolve_dataset_source(str(input_root.resolve()))
    return MetaDataset(source=source, name=input_name, digest=local_digest(files), schema=schema)


def log_spark_logged_model(
    model: Any,
    name: str,
    tags: dict[str, str],
    params: dict[str, str],
    signature: Any,
) -> tuple[str, str]:
    """Log a Spark PipelineModel as an MLflow 3 LoggedModel in the active run; (model_id, model_uri).

    Explicit pip requirements skip MLflow's requirement inference, which would start a second
    JVM and cost ~25 s (reference mlflow §1b).
    """
    import mlflow
    import pandas
    import pyspark
    from mlflow.entities import LoggedModelStatus

    logged = mlflow.initialize_logged_model(name=name, tags=tags, params=params, model_type="spark")
    try:
        with tempfile.TemporaryDirectory(prefix="pachflow-model-") as tmp:
            path = Path(tmp) / "model"
            mlflow.spark.save_model(
                model,
                str(path),
                signature=signature,
                pip_requirements=[
                    f"pyspark=={pyspark.__version__}",
                    f"mlflow=={mlflow.__version__}",
                    f"pandas=={pandas.__version__}",
                ],
            )
            mlflow.MlflowClient().log_model_artifacts(logged.model_id, str(path))
    except BaseException:
        mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.model_id, f"models:/{logged.model_id}"
