"""Tiny pipeline specs for provider tests: copy steps and a fake trainer that logs a real MLflow run.

They run on pachd-lite's host runner (``/pfs`` paths are mapped to the datum sandbox), with the
test interpreter's Python, so they need no Spark and finish in well under a second per datum.
"""

from __future__ import annotations

import json
from pathlib import Path

COPY = "import shutil, sys; shutil.copytree('/pfs/{inp}', '/pfs/out', dirs_exist_ok=True)"

FAKE_TRAIN = r"""
import json, os, pathlib, mlflow
mlflow.set_tracking_uri(os.environ['MLFLOW_TRACKING_URI'])
mlflow.set_experiment(os.environ.get('MLFLOW_EXPERIMENT_NAME', 'pachflow-tests'))
rows = sum(len(p.read_text().splitlines()) for p in pathlib.Path('/pfs/{inp}').rglob('*') if p.is_file())
with mlflow.start_run() as run:
    mlflow.log_param('max_depth', os.environ.get('MAX_DEPTH', '5'))
    mlflow.log_metric('rows', rows)
    mlflow.log_text('artifact_path: model\nflavors: {{}}\n', 'model/MLmodel')
    mlflow.set_tags({{'pachyderm.pipeline': os.environ['PPS_PIPELINE_NAME'],
                     'pachyderm.job': os.environ['PACH_JOB_ID'],
                     'pachyderm.commit': os.environ['PACH_OUTPUT_COMMIT_ID']}})
out = pathlib.Path('/pfs/out')
(out / run.info.run_id).touch()
(out / 'mlflow_run.json').write_text(json.dumps({{
    'run_id': run.info.run_id, 'experiment_id': run.info.experiment_id,
    'tracking_uri': os.environ['MLFLOW_TRACKING_URI'], 'model_uri': f'runs:/{{run.info.run_id}}/model',
    'metrics': {{'rows': rows}}}}))
"""


def spec(name: str, inp: str, code: str, glob: str = "/*", env: dict[str, str] | None = None) -> dict:
    transform: dict = {"cmd": ["python3", "-c", code.format(inp=inp)], "image": "pachflow-tests"}
    if env:
        transform["env"] = env
    return {
        "pipeline": {"name": name, "project": {"name": "default"}},
        "transform": transform,
        "input": {"pfs": {"repo": inp, "glob": glob}},
        "datum_tries": 1,
    }


def write_chain(
    folder: Path, prefix: str, raw: str, *, train_env: dict[str, str] | None = None
) -> dict[str, str]:
    """Write split -> etl -> train specs into ``folder``; return the pipeline names."""
    names = {"split": f"{prefix}-split", "etl": f"{prefix}-etl", "train": f"{prefix}-train"}
    folder.mkdir(parents=True, exist_ok=True)
    specs = [
        spec(names["split"], raw, COPY),
        spec(names["etl"], names["split"], COPY),
        spec(
            names["train"],
            names["etl"],
            FAKE_TRAIN,
            glob="/",
            env={"MLFLOW_TRACKING_URI": "", **(train_env or {})},
        ),
    ]
    for s in specs:
        (folder / f"{s['pipeline']['name']}.json").write_text(json.dumps(s, indent=2))
    return names
