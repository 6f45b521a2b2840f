"""Report a DAG's latest run in the local Airflow database as JSON (state, tasks, lineage XCom).

Run as ``python -m pachflow_tools.local.airflow_report DAG_ID`` with the local stack's Airflow
environment (the demo does), so that it reads the same database that `airflow dags test` wrote.
"""

from __future__ import annotations

import argparse
import json
import sys

LINEAGE_XCOM_KEY = "lineage"


def latest_run_report(dag_id: str) -> dict:
    """The newest run of ``dag_id``: run id, state, each task's state, and the ``lineage`` XCom."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        ).first()
        if run is None:
            return {"dag_id": dag_id, "run_id": None}
        tasks = session.execute(
            select(TaskInstance.task_id, TaskInstance.state, TaskInstance.map_index).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id
            )
        ).all()
        lineage_rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == LINEAGE_XCOM_KEY
            )
        ).all()
        lineage = {row.task_id: XComModel.deserialize_value(row) for row in lineage_rows}
        newest = session.scalars(
            select(XComModel)
            .where(XComModel.dag_id == dag_id, XComModel.key == LINEAGE_XCOM_KEY)
            .order_by(XComModel.timestamp.desc())
            .limit(1)
        ).first()
        return {
            "dag_id": dag_id,
            "run_id": run.run_id,
            "state": str(run.state),
            "tasks": {
                (task_id if map_index < 0 else f"{task_id}[{map_index}]"): str(state)
                for task_id, state, map_index in tasks
            },
            "lineage": lineage,
            # The newest lineage of any run: what stands when this run had nothing new to train on.
            "newest_lineage": (
                {"run_id": newest.run_id, "lineage": XComModel.deserialize_value(newest)} if newest else None
            ),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pachflow_tools.local.airflow_report")
    parser.add_argument("dag_id")
    args = parser.parse_args(argv)
    print(json.dumps(latest_run_report(args.dag_id), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
