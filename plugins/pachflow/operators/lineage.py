"""PachydermRecordLineageOperator: pair the MLflow run with the Pachyderm commits that produced it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from pachflow.hooks.unreachable import no_retry_when_unreachable
from pachflow.links import MLflowRunLink, PachydermCommitLink


class PachydermRecordLineageOperator(BaseOperator):
    """Record lineage of the training commit in ``commit_set`` (default: the branch head of ``train_repo``).

    Reads the MLflow run id from the training output commit, walks its provenance (every input
    repo, joins and crosses included), then writes: XCom ``lineage``, MLflow run tags, a
    registered version of ``model_name`` (once per run) with the same tags, ``alias`` on that
    version when given, and metadata on the training commit. Retry-safe. An empty
    ``commit_set`` (nothing was trained) skips.

    :param train_repo: the training pipeline's output repo (required).
    :param model_name: registered MLflow model to version (required, templated).
    :param alias: alias to move to the new version (templated); None = no alias.
    :param commit_set: commit set of the training job (templated); ``None`` = head of ``train_repo``.
    :param project: Pachyderm project; default the connection's.
    """

    template_fields: Sequence[str] = ("commit_set", "train_repo", "model_name", "alias", "project")
    ui_color = "#ffe0b3"
    operator_extra_links = (MLflowRunLink(), PachydermCommitLink())

    def __init__(
        self,
        *,
        train_repo: str,
        model_name: str,
        alias: str | None = None,
        commit_set: str | None = None,
        project: str | None = None,
        pachyderm_conn_id: str = "pachyderm_default",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.commit_set = commit_set
        self.train_repo = train_repo
        self.model_name = model_name
        self.alias = alias
        self.project = project
        self.pachyderm_conn_id = pachyderm_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self._record: dict[str, Any] = {}

    def _required(self, name: str) -> str:
        value = str(getattr(self, name) or "").strip()
        if not value or value == "None":
            from pachflow.exceptions import ConfigurationError

            raise ConfigurationError(f"{self.task_id}: parameter {name} rendered empty; give the {name}")
        return value

    @no_retry_when_unreachable
    def execute(self, context: Context) -> dict[str, Any]:
        from pachyderm_sdk.api import pfs

        from pachflow.hooks.mlflow import MLflowHook
        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.hooks.unreachable import TASK_RETRY_SECONDS
        from pachflow.lineage import record_lineage, render_tree
        from pachflow.links import persist_commit_link, persist_mlflow_link

        train_repo, model_name = self._required("train_repo"), self._required("model_name")
        alias = str(self.alias or "").strip() or None
        hook = PachydermHook(
            self.pachyderm_conn_id, project=self.project or None, retry_for_seconds=TASK_RETRY_SECONDS
        )
        client = hook.get_conn()
        commit_set = self.commit_set
        if commit_set is not None and str(commit_set).strip() in ("", "None"):
            raise AirflowSkipException("No training commit to record: nothing was trained in this run")
        if commit_set is None:
            branch = pfs.Branch(
                repo=pfs.Repo(name=train_repo, type="user", project=pfs.Project(name=hook.project)),
                name="master",
            )
            commit_set = hook.call(client.pfs.inspect_branch, branch=branch).head.id
        mlflow_hook = MLflowHook(self.mlflow_conn_id)
        record = hook.call(
            record_lineage,
            client,
            mlflow_hook.get_conn(),
            project=hook.project,
            address=hook.address,
            tracking_uri=mlflow_hook.tracking_uri,
            commit_set=str(commit_set),
            dag_id=context["dag"].dag_id,
            airflow_run_id=context["run_id"],
            train_repo=train_repo,
            model_name=model_name,
            alias=alias,
        )
        self._record = record
        self.log.info("Lineage:\n%s", render_tree(record))
        context["ti"].xcom_push(key="lineage", value=record)
        persist_mlflow_link(
            context,
            tracking_uri=mlflow_hook.tracking_uri,
            experiment_id=record["mlflow_experiment_id"],
            run_id=record["mlflow_run_id"],
        )
        persist_commit_link(context, hook, train_repo, record["commit_set"])
        return record

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: every commit of the training's provenance (on its branch); run facet
        ``pachflow_mlflow``: the MLflow run and the model version registered from it."""
        from pachflow.branches import commit_branch
        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.openlineage import BranchCommit, mlflow_run_facet, operator_lineage

        rec = self._record
        if not rec:
            return None
        ns = rec["pachyderm_address"].replace("grpcs://", "pachyderm://").replace("grpc://", "pachyderm://")
        hook = PachydermHook(self.pachyderm_conn_id, project=self.project or None)
        client = hook.get_conn()
        inputs = []
        try:
            for n in (n for n in rec["graph"]["nodes"] if n["kind"] == "commit"):
                branch = hook.call(commit_branch, client, n["project"], n["repo"], n["commit"])
                inputs.append(BranchCommit(n["project"], n["repo"], branch, n["commit"]))
        finally:
            hook.close()
        return operator_lineage(ns, inputs=inputs, run_facets=mlflow_run_facet(rec))
