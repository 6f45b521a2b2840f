"""The pipeline specs parse as Pachyderm CreatePipelineRequests and wire the jobs together."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import betterproto
import pytest
from pachyderm_sdk.api import pps

SPECS = Path(__file__).resolve().parents[2] / "pachyderm_specs"


def unknown_fields(raw: dict, message: betterproto.Message, prefix: str = "") -> list[str]:
    unknown = []
    for key, value in raw.items():
        if key not in message.__dataclass_fields__:
            unknown.append(prefix + key)
            continue
        child = getattr(message, key)
        if isinstance(value, dict) and isinstance(child, betterproto.Message):
            unknown += unknown_fields(value, child, f"{prefix}{key}.")
    return unknown


def load(name: str) -> pps.CreatePipelineRequest:
    return pps.CreatePipelineRequest().from_json((SPECS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["split_data", "etl", "ml_train"])
def test_spec_parses_and_its_command_is_accepted_by_the_job(name: str) -> None:
    raw = json.loads((SPECS / f"{name}.json").read_text())
    spec = load(name)
    assert spec.pipeline.name == name == raw["pipeline"]["name"]
    assert spec.transform.image == "pachflow/worker:0.1.0"
    cmd = spec.transform.cmd
    assert cmd[:2] == ["python3", "-m"]
    module = importlib.import_module(cmd[2])
    args = module.build_parser().parse_args(cmd[3:])
    assert str(args.input) == f"/pfs/{spec.input.pfs.name}" and str(args.output) == "/pfs/out"
    # every key in the JSON is a real field (betterproto silently ignores unknown ones)
    assert unknown_fields(raw, spec) == []


def test_pipelines_chain_raw_data_to_ml_train() -> None:
    split, etl, train = load("split_data"), load("etl"), load("ml_train")
    assert (split.input.pfs.repo, split.input.pfs.glob) == ("raw_data", "/*")
    assert (etl.input.pfs.repo, etl.input.pfs.glob) == ("split_data", "/bucket-*/*")
    assert etl.transform.datum_batching and "--datum-batching" in etl.transform.cmd
    assert (train.input.pfs.repo, train.input.pfs.glob) == ("etl", "/")
    assert int(split.transform.env["SPLIT_BUCKETS"]) == 16
    assert train.transform.env["MLFLOW_EXPERIMENT_NAME"]
    assert train.datum_tries == 2, "one retry: an MLflow blip should not fail the day's training"
