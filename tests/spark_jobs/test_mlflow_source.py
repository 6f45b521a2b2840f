from __future__ import annotations

import pytest
from mlflow.data.dataset_source_registry import get_dataset_source_from_json, resolve_dataset_source

from pachflow.mlflow_source import PachydermDatasetSource, parse_uri

URI = "pachyderm://localhost:30650/default/etl@0123456789abcdef0123456789abcdef"


def test_uri_round_trip_through_mlflows_registry() -> None:
    # resolved through the mlflow.dataset_source entry point of the installed distribution
    source = resolve_dataset_source(URI)
    assert isinstance(source, PachydermDatasetSource)
    assert (source.address, source.project, source.repo, source.commit) == (
        "localhost:30650",
        "default",
        "etl",
        "0123456789abcdef0123456789abcdef",
    )
    again = get_dataset_source_from_json(source.to_json(), source_type="pachyderm")
    assert again.uri == URI and again.to_dict() == source.to_dict()


def test_path_inside_the_commit_is_kept() -> None:
    ref = parse_uri("pachyderm://pachd:30650/proj/raw_data@abc/2024/day-01.csv")
    assert (ref.project, ref.repo, ref.commit, ref.path) == ("proj", "raw_data", "abc", "/2024/day-01.csv")
    assert PachydermDatasetSource(ref.address, ref.project, ref.repo, ref.commit, ref.path).uri.endswith(
        "raw_data@abc/2024/day-01.csv"
    )


@pytest.mark.parametrize("bad", ["s3://bucket/x", "pachyderm://host/etl@abc", "pachyderm://h:1/p/etl"])
def test_other_uris_are_not_pachyderm_sources(bad: str) -> None:
    assert not PachydermDatasetSource._can_resolve(bad)
    with pytest.raises(ValueError, match="not a Pachyderm dataset URI"):
        parse_uri(bad)


def test_module_does_not_import_airflow() -> None:
    import subprocess
    import sys

    code = "import sys, pachflow.mlflow_source; sys.exit('airflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
