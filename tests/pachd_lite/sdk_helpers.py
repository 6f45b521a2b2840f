"""Short SDK helpers shared by the pachd-lite and reliability tests (repos, pipelines, jobs, reads)."""

from __future__ import annotations

import json
import sys

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from tests.fixtures.pachd import unique_name

PY = sys.executable


def create_repo(client, prefix: str) -> str:
    name = unique_name(prefix)
    client.pfs.create_repo(repo=pfs.Repo.from_uri(name))
    return name


def create_pipeline(client, name: str, input_: dict, cmd: list[str], **extra) -> pps.CreatePipelineV2Response:
    spec = {"pipeline": {"name": name}, "input": input_, "transform": {"cmd": cmd}, **extra}
    return client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))


def put(client, repo: str, files: dict[str, bytes], branch: str = "master") -> pfs.Commit:
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@{branch}")) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path, data)
    return c


def job(client, pipeline: str, job_id: str) -> pps.JobInfo:
    return client.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name=pipeline), id=job_id), wait=True)


def read(client, uri: str) -> bytes:
    return client.pfs.pfs_file(pfs.File.from_uri(uri)).read()


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    """The status code and message of a call that must fail (streams are drained)."""
    with pytest.raises(grpc.RpcError) as err:
        result = call(*args, **kwargs)
        if hasattr(result, "__next__"):
            list(result)
    return err.value.code(), err.value.details() or ""
