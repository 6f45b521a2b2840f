"""Attacks on pachd-lite's PPS side (issue 18): lost datums, the worker API, user code reaching the store.

Real servers (``pachd-lite serve`` subprocesses), real user-code subprocesses, the unmodified SDK.
"""

from __future__ import annotations

import pytest
from pachyderm_sdk.api import pps

from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import PY, create_pipeline, create_repo, job, put

LONG_NAME = "n" * 300  # over the 255 bytes a host file name may have


# --- 1. no job succeeds while datums never ran ------------------------------------------------------

# user code that copies its input and, for the file "bad", writes the hostile output name it is given
WRITE_OUTPUT = (
    "import os, shutil, sys\n"
    "p = os.environ['{repo}']\n"
    "shutil.copy(p, '/pfs/out/' + os.path.basename(p))\n"
    "if os.path.basename(p) == 'bad':\n"
    "    open(os.fsencode('/pfs/out/') + {name!r}, 'w').write('x')\n"
)


@pytest.mark.parametrize(
    ("attack", "files", "output_name", "words"),
    [
        ("input name too long", {"/a": b"1", "/b": b"2", f"/{LONG_NAME}": b"3"}, None, [LONG_NAME[:40]]),
        ("newline in output name", {"/a": b"1", "/bad": b"2", "/c": b"3"}, b"two\nlines", ["two\\nlines"]),
        ("output name not UTF-8", {"/a": b"1", "/bad": b"2", "/c": b"3"}, b"caf\xe9", ["caf\\xe9", "UTF-8"]),
    ],
)
@pytest.mark.parametrize("batching", [False, True], ids=["per-datum", "batched"])
def test_a_datum_the_machinery_cannot_handle_fails_the_job(
    pachd_client, attack, files, output_name, words, batching
):
    data = create_repo(pachd_client, "data")
    name = unique_name("lost")
    code = WRITE_OUTPUT.format(repo=data, name=output_name or b"unused")
    transform = {"cmd": [PY, "-c", code]}
    if batching:
        transform = {
            "cmd": [PY, "-c", "from pachyderm_sdk import batch_all_datums\n@batch_all_datums\ndef main():\n"
                    + "".join("    " + line + "\n" for line in code.splitlines()) + "main()\n"],
            "datumBatching": True,
        }  # fmt: skip
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, [], transform=transform, datum_tries=1
    )
    commit = put(pachd_client, data, files)
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_FAILURE, (attack, info.state, info.reason)
    assert info.data_failed >= 1 and info.data_total == 3, info
    datums = list(pachd_client.pps.list_datum(job=pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)))
    failed = [d for d in datums if d.state == pps.DatumState.FAILED]
    assert len(failed) == 1, [(d.datum.id, d.state) for d in datums]
    assert failed[0].datum.id in info.reason
    for word in words:
        assert word in info.reason, (attack, info.reason)
