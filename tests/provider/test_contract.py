"""The lineage contract's pure parts: repo keys across projects, the tag builder, graph order."""

from __future__ import annotations

from pachflow.contract import CommitNode, ProvenanceGraph, lineage_tags, repo_key, split_repo_key
from pachflow.lineage import render_tree


def _graph() -> ProvenanceGraph:
    """shared/users@u1 (another project) and events@e1 feed features@f1; events@e1 also feeds train@t1
    directly (a diamond); labels@l1 is joined in at train."""

    def n(project, repo, commit, *up, pipeline=False):
        return CommitNode(project, repo, commit, tuple(up), pipeline)

    nodes = [
        n(
            "research",
            "train",
            "t1",
            "research/features@f1",
            "research/events@e1",
            "research/labels@l1",
            pipeline=True,
        ),
        n("research", "features", "f1", "shared/users@u1", "research/events@e1", pipeline=True),
        n("research", "events", "e1"),
        n("research", "labels", "l1"),
        n("shared", "users", "u1"),
    ]
    return ProvenanceGraph(root="research/train@t1", nodes={x.id: x for x in nodes})


def test_repo_keys_name_the_project_only_when_it_differs():
    assert repo_key("research", "events", "research") == "events"
    assert repo_key("shared", "users", "research") == "shared/users"
    assert split_repo_key("shared/users", "research") == ("shared", "users")
    assert split_repo_key("events", "research") == ("research", "events")


def test_graph_order_is_upstream_first_and_sources_have_no_upstream():
    g = _graph()
    order = [x.id for x in g.upstream_first()]
    assert order.index("research/events@e1") < order.index("research/features@f1")
    assert order[-1] == "research/train@t1"
    assert [s.id for s in g.sources()] == ["research/events@e1", "research/labels@l1", "shared/users@u1"]
    assert g.commits("research") == {
        "events": "e1",
        "labels": "l1",
        "shared/users": "u1",
        "features": "f1",
        "train": "t1",
    }
    edges = {(e["from"], e["to"]) for e in g.to_dict()["edges"]}
    assert ("research/events@e1", "research/train@t1") in edges
    assert ("research/events@e1", "research/features@f1") in edges and len(edges) == 5


def test_one_tag_builder_for_both_sides():
    tags = lineage_tags(
        address="pachd:30650",
        project="research",
        pipeline="train",
        job="t1",
        commit="t1",
        provenance=_graph().commits("research"),
        dag_id="",
    )
    assert tags == {
        "pachyderm.address": "pachd:30650",
        "pachyderm.project": "research",
        "pachyderm.pipeline": "train",
        "pachyderm.job": "t1",
        "pachyderm.commit": "t1",
        "pachyderm.provenance.events": "e1",
        "pachyderm.provenance.labels": "l1",
        "pachyderm.provenance.shared/users": "u1",
        "pachyderm.provenance.features": "f1",
    }


def test_render_tree_draws_a_shared_input_once():
    g = _graph()
    record = {
        "project": "research",
        "train_repo": "train",
        "commit_set": "t1",
        "mlflow_run_id": "r1",
        "mlflow_experiment_id": "1",
        "commits": g.commits("research"),
        "sources": ["events", "labels", "shared/users"],
        "graph": g.to_dict(),
    }
    assert render_tree(record).splitlines()[1:7] == [
        "└── trained on train@t1",
        "    ├── events@e1",
        "    ├── labels@l1",
        "    └── features@f1",
        "        ├── events@e1 (see above)",
        "        └── shared/users@u1",
    ]
