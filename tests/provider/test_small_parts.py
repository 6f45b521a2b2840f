"""Small pure parts: upload planning, spec overrides and ordering, link URLs, optional OpenLineage."""

from __future__ import annotations

import json

import pytest

from pachflow.exceptions import ConfigurationError
from pachflow.links import console_commit_url, mlflow_run_url
from pachflow.openlineage import operator_lineage
from pachflow.pipelines import (
    PipelineSpecError,
    choose_project,
    input_repos,
    normalize,
    upstream_first,
    with_overrides,
)
from pachflow.upload import plan_upload


def test_plan_upload_keeps_paths_relative_to_the_source_root(tmp_path):
    (tmp_path / "d" / "2026").mkdir(parents=True)
    (tmp_path / "d" / "a.csv").write_text("1")
    (tmp_path / "d" / "2026" / "b.csv").write_text("22")
    (tmp_path / "d" / "skip.txt").write_text("x")
    by_dir = plan_upload(str(tmp_path / "d"), dest="/in")
    assert [(i.path, i.size) for i in by_dir] == [
        ("/in/2026/b.csv", 2),
        ("/in/a.csv", 1),
        ("/in/skip.txt", 1),
    ]
    by_glob = plan_upload(str(tmp_path / "d" / "**" / "*.csv"))
    assert [i.path for i in by_glob] == ["/2026/b.csv", "/a.csv"]
    assert [i.path for i in plan_upload(str(tmp_path / "d" / "a.csv"))] == ["/a.csv"]


def test_plan_upload_rejects_an_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="contains no files"):
        plan_upload(str(tmp_path / "empty"))


def _spec(name, repo):
    return {"pipeline": {"name": name, "project": {"name": "default"}}, "transform": {"cmd": ["x"]},
            "input": {"cross": [{"pfs": {"repo": repo, "glob": "/*"}}, {"pfs": {"repo": "extra", "glob": "/"}}]}}  # fmt: skip


def test_overrides_order_and_normalisation():
    s = with_overrides(_spec("train", "etl"), project="default", env={"*": {"A": 1}, "train": {"B": None}})
    assert s["transform"]["env"] == {"A": "1", "B": ""}
    assert input_repos(s["input"], "default") == [("default", "etl"), ("default", "extra")]
    ordered = upstream_first([_spec("train", "etl"), _spec("etl", "split"), _spec("split", "raw")])
    assert [x["pipeline"]["name"] for x in ordered] == ["split", "etl", "train"]
    with pytest.raises(PipelineSpecError, match="cycle"):
        upstream_first([_spec("a", "b"), _spec("b", "a")])
    camel = (
        '{"pipeline": {"name": "x"}, "parallelismSpec": {"constant": "2"}, "datumTries": 3, "update": true}'
    )
    snake = '{"pipeline": {"name": "x"}, "parallelism_spec": {"constant": 2}, "datum_tries": "3"}'
    assert normalize(camel) == normalize(snake)


def test_a_spec_without_project_goes_to_the_given_one_with_its_inputs_that_name_none():
    spec = _spec("train", "etl")
    del spec["pipeline"]["project"]
    spec["input"]["cross"][1]["pfs"]["project"] = "shared"
    placed = with_overrides(spec, project="research")
    assert placed["pipeline"]["project"] == {"name": "research"}
    assert input_repos(placed["input"], "research") == [("research", "etl"), ("shared", "extra")]
    assert "project" not in spec["pipeline"], "the caller's spec is not modified"
    with pytest.raises(PipelineSpecError, match="names project 'default', not 'research'"):
        with_overrides(_spec("train", "etl"), project="research")


def test_choose_project_respects_the_spec_and_refuses_a_contradiction():
    own = _spec("train", "etl")  # names project "default"
    bare = {k: v for k, v in own.items() if k != "pipeline"} | {"pipeline": {"name": "train"}}
    assert choose_project(own, "a.json", explicit=None) == "default"
    assert choose_project(bare, "b.json", explicit=None) == "default"  # pachd's own default
    assert choose_project(bare, "b.json", explicit="research") == "research"
    assert choose_project(own, "a.json", explicit="default") == "default"
    research = json.loads(json.dumps(own))
    research["pipeline"]["project"]["name"] = "research"
    assert choose_project(research, "r.json", explicit=None) == "research"
    with pytest.raises(ConfigurationError) as err:
        choose_project(
            research, "specs/r.json", explicit="fraud", explicit_from="project='fraud' of the task"
        )
    assert "specs/r.json" in str(err.value) and "'research'" in str(err.value) and "'fraud'" in str(err.value)


def test_link_urls():
    assert mlflow_run_url("http://m:5000/", "3", "abc") == "http://m:5000/#/experiments/3/runs/abc"
    assert (
        console_commit_url("https://console", "default", "etl", "c1")
        == "https://console/project/default/repos/etl/commit/c1/"
    )


def test_openlineage_is_optional():
    try:
        import airflow.providers.openlineage  # noqa: F401
    except ImportError:
        assert operator_lineage("pachyderm://h:1", inputs=["default/raw@c"]) is None
    else:
        lineage = operator_lineage("pachyderm://h:1", inputs=["default/raw@c"])
        assert lineage.inputs[0].namespace == "pachyderm://h:1" and lineage.inputs[0].name == "default/raw@c"
