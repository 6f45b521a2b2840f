"""PachydermRecordLineageOperator: pair the MLflow run with the Pachyderm commits that produced it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from pachflow.links import MLflowRunLink, PachydermCommitLink


class PachydermRecordLineageOperator(BaseOperator):
    """Record lineage of the training commit in ``commit_set`` (default: the branch head of ``train_repo``).

    Reads the MLflow run id from the training output commit, walks provenance back to
    ``raw_repo``, then writes: XCom ``lineage``, MLflow run tags, a registered model version
    (registered once per run) with the same tags, the ``alias`` on that version, and metadata
    on the training commit. Retry-safe. An empty ``commit_set`` (nothing was trained) skips.

    :param commit_set: commit set of the training job (templated); ``None`` = head of ``train_repo``.
    """

    template_fields: Sequence[str] = ("commit_set", "model_name", "alias", "project")
    ui_color = "#ffe0b3"
    operator_extra_links = (MLflowRunLink(), PachydermCommitLink())

    def __init__(
        self,
        *,
        commit_set: str | None = None,
        train_repo: str = "ml_train",
        raw_repo: str = "raw_data",
        model_name: str = "fraud-detector",
        alias: str | None = "champion",
        project: str | None = None,
        pachyderm_conn_id: str = "pachyderm_default",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.commit_set = commit_set
        self.train_repo = train_repo
        self.raw_repo = raw_repo
        self.model_name = model_name
        self.alias = alias
        self.project = project
        self.pachyderm_conn_id = pachyderm_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self._record: dict[str, Any] = {}

    def execute(self, context: Context) -> dict[str, Any]:
        from pachyderm_sdk.api import pfs

        from pachflow.hooks.mlflow import MLflowHook
        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.lineage import record_lineage, render_tree
        from pachflow.links import persist_commit_link, persist_mlflow_link

        hook = PachydermHook(self.pachyderm_conn_id, project=self.project or None)
        client = hook.get_conn()
        commit_set = self.commit_set
        if commit_set is not None and str(commit_set).strip() in ("", "None"):
            raise AirflowSkipException("No training commit to record: nothing was trained in this run")
        if commit_set is None:
            branch = pfs.Branch(
                repo=pfs.Repo(name=self.train_repo, type="user", project=pfs.Project(name=hook.project)),
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
            train_repo=self.train_repo,
            raw_repo=self.raw_repo,
            model_name=self.model_name,
            alias=self.alias or None,
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
        persist_commit_link(context, hook, self.train_repo, record["commit_set"])
        return record

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from pachflow.openlineage import operator_lineage

        rec = self._record
        if not rec:
            return None
        ns = rec["pachyderm_address"].replace("grpcs://", "pachyderm://").replace("grpc://", "pachyderm://")
        inputs = [f"{rec['project']}/{repo}@{cid}" for repo, cid in rec["commits"].items()]
        return operator_lineage(ns, inputs=inputs)
