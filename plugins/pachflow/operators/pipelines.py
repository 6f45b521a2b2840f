"""PachydermApplyPipelinesOperator: create or update pipelines from JSON specs, idempotently."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from pachflow.hooks.unreachable import no_retry_when_unreachable

MLFLOW_SECRET_NAME = "pachflow-mlflow-credentials"
# transform.secrets entries the MLflow pipelines get when the connection has a login
MLFLOW_SECRET_ENV = (("MLFLOW_TRACKING_USERNAME", "username"), ("MLFLOW_TRACKING_PASSWORD", "password"))


class PachydermApplyPipelinesOperator(BaseOperator):
    """Create missing pipelines and update changed ones; identical specs cause no update and no job.

    Returns ``{"actions": {pipeline: created|updated|unchanged}, "commit_sets": [...], ...}`` and
    pushes XCom ``commit_set``: the last commit set started by a create/update ("" if none), i.e.
    the jobs to wait for when no new data is pushed.

    :param specs: spec files, directories of ``*.json`` or globs (templated).
    :param env: extra ``transform.env`` per pipeline name, ``"*"`` for all (templated). Keep the
        values stable between runs: a changed value updates the pipeline and starts a job.
    :param mlflow_conn_id: when set, ``MLFLOW_TRACKING_URI`` from this connection is added to the
        pipelines in ``mlflow_pipelines`` and to those whose spec declares ``MLFLOW_TRACKING_URI``.
        When the connection has a login (MLflow basic auth), its login and password are stored in
        the Pachyderm secret ``mlflow_secret_name`` (keys ``username``/``password``, replaced on
        every run) and those pipelines get ``transform.secrets`` entries that put them in
        ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``: the spec holds only the name.
    :param mlflow_pipelines: pipelines that log to MLflow.
    :param mlflow_secret_name: the Pachyderm secret holding the MLflow credentials (a lowercase
        Kubernetes name).
    :param reprocess: True, or names of pipelines, to update with ``reprocess`` even when unchanged
        (every datum is processed again; used to force retraining) (templated).
    :param reprocess_on_change: True, or names of pipelines, whose spec changes reprocess every datum
        (Pachyderm skips unchanged datums after a plain update: a new hyper-parameter would not retrain).
    :param create_input_repos: create input repos that do not exist yet.
    :param project: Pachyderm project of specs that name none (templated); default: the connection's
        ``project`` extra, else ``default``. A spec whose ``pipeline.project`` names another project
        than this one (or the connection's) is an error naming both; a missing project is created.
    """

    template_fields: Sequence[str] = ("specs", "env", "reprocess", "project")
    template_fields_renderers = {"env": "json"}
    ui_color = "#e0d4ff"

    def __init__(
        self,
        *,
        specs: str | Sequence[str],
        env: Mapping[str, Mapping[str, Any]] | None = None,
        mlflow_conn_id: str | None = None,
        mlflow_pipelines: Sequence[str] = (),
        mlflow_secret_name: str = MLFLOW_SECRET_NAME,
        reprocess: bool | str | Sequence[str] = False,
        reprocess_on_change: bool | Sequence[str] = (),
        create_input_repos: bool = True,
        project: str | None = None,
        pachyderm_conn_id: str = "pachyderm_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.specs = specs
        self.env = env
        self.mlflow_conn_id = mlflow_conn_id
        self.mlflow_pipelines = mlflow_pipelines
        self.mlflow_secret_name = mlflow_secret_name
        self.reprocess = reprocess
        self.reprocess_on_change = reprocess_on_change
        self.create_input_repos = create_input_repos
        self.project = project
        self.pachyderm_conn_id = pachyderm_conn_id

    def _reprocess(self) -> bool | list[str]:
        value = self.reprocess
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in ("true", "false", "", "none"):
                return text.lower() == "true"
            return [p.strip() for p in text.split(",") if p.strip()]
        return value if isinstance(value, bool) else list(value)

    @no_retry_when_unreachable
    def execute(self, context: Context) -> dict[str, Any]:
        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.hooks.unreachable import TASK_RETRY_SECONDS
        from pachflow.pipelines import (
            SecretEnv,
            apply_pipelines,
            choose_project,
            load_spec,
            spec_files,
            with_overrides,
        )

        hook = PachydermHook(
            self.pachyderm_conn_id, project=self.project or None, retry_for_seconds=TASK_RETRY_SECONDS
        )
        client = hook.get_conn()
        env: dict[str, dict[str, Any]] = {k: dict(v or {}) for k, v in (self.env or {}).items()}
        files = spec_files(self.specs)
        raw = [load_spec(f) for f in files]
        secret_env: dict[str, list[SecretEnv]] = {}
        secrets: dict[str, dict[str, str]] = {}
        if self.mlflow_conn_id:
            from pachflow.hooks.mlflow import MLflowHook

            mlflow_hook = MLflowHook(self.mlflow_conn_id)
            uri = mlflow_hook.tracking_uri
            credentials = mlflow_hook.credentials()
            refs = [SecretEnv(var, self.mlflow_secret_name, key) for var, key in MLFLOW_SECRET_ENV]
            for spec in raw:
                name = spec["pipeline"]["name"]
                declared = "MLFLOW_TRACKING_URI" in ((spec.get("transform") or {}).get("env") or {})
                if declared or name in self.mlflow_pipelines:
                    env.setdefault(name, {})["MLFLOW_TRACKING_URI"] = uri
                    if credentials:
                        secret_env[name] = refs
            if secret_env:
                secrets[self.mlflow_secret_name] = {
                    "username": credentials["MLFLOW_TRACKING_USERNAME"],
                    "password": credentials["MLFLOW_TRACKING_PASSWORD"],
                }
        explicit = hook.project if hook.project_is_explicit else None
        specs = [
            with_overrides(
                spec,
                project=choose_project(
                    spec, path, explicit=explicit, explicit_from=hook.endpoint.project_from
                ),
                env=env,
                secret_env=secret_env,
            )
            for spec, path in zip(raw, files, strict=True)
        ]
        self.log.info(
            "Applying %d pipeline specs from %s to pachd at %s",
            len(specs),
            [str(f) for f in files],
            hook.address,
        )
        result = hook.call(
            apply_pipelines,
            client,
            specs,
            reprocess=self._reprocess(),
            reprocess_on_change=self.reprocess_on_change,
            create_input_repos=self.create_input_repos,
            secrets=secrets,
        )
        context["ti"].xcom_push(key="commit_set", value=result.commit_sets[-1] if result.commit_sets else "")
        if result.created_projects:
            self.log.info("Created Pachyderm projects: %s", ", ".join(result.created_projects))
        self.log.info("Pipelines: %s", result.actions)
        return result.to_dict()
