"""pachd_lite/README.md's "What pachd-lite does not serve" table matches what the server serves.

The unserved set is computed from the adapter classes a PachdLite builds (``server.unserved_rpcs``;
the server refuses to start if they differ) and checked over the wire against a running pachd-lite, so neither the table nor the computation
can drift from what clients get.
"""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from pachd_lite.api.registry import RpcMethod, load_methods, unserved_message
from pachd_lite.server import unserved_rpcs

README = Path(__file__).resolve().parents[2] / "pachd_lite" / "README.md"
HEADING = "## What pachd-lite does not serve"


def section(text: str) -> str:
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    return text[start : end if end != -1 else len(text)]


def table(text: str) -> list[tuple[str, str]]:
    """(service, not-served cell) per row of the section's table."""
    rows = []
    for line in section(text).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] == "service" or set(cells[0]) <= {"-"}:
            continue
        services = re.findall(r"`([^`]+)`", cells[0])
        assert len(services) == 1, f"row {line!r}: the service cell must name one `service`"
        rows.append((services[0], cells[1]))
    return rows


def problems(text: str, unserved: list[RpcMethod]) -> list[str]:
    """How the README's table differs from the unserved RPCs (empty: it matches)."""
    methods = load_methods()
    unserved_paths = {m.path for m in unserved}
    listed: set[str] = set()
    found = []
    for service, cell in table(text):
        in_service = [m.path for m in methods.values() if m.service == service]
        if not in_service:
            found.append(f"{service}: no such service in the SDK")
        if cell == "all":
            listed.update(in_service)
            found += [
                f"{p}: served, but its service's row says all" for p in in_service if p not in unserved_paths
            ]
            continue
        names = re.findall(r"`([^`]+)`", cell)
        if not names:
            found.append(f"{service}: the row names no RPC (write `Name`s or all)")
        for name in names:
            path = f"/{service}/{name}"
            listed.add(path)
            if path not in methods:
                found.append(f"{path}: no such RPC in the SDK")
            elif path not in unserved_paths:
                found.append(f"{path}: served, but listed as not served")
    found += [f"{p}: not served, but missing from the table" for p in sorted(unserved_paths - listed)]
    return found


@pytest.fixture(scope="module")
def unserved() -> list[RpcMethod]:
    return unserved_rpcs()


def test_readme_lists_exactly_the_unserved_rpcs(unserved: list[RpcMethod]) -> None:
    assert problems(README.read_text(), unserved) == []
    # the known gaps of issue 17 are among them, and the core PFS/PPS calls are not
    paths = {m.path for m in unserved}
    assert {"/auth_v2.API/WhoAmI", "/storage.Fileset/CreateFileset", "/debug_v2.Debug/Dump"} <= paths
    assert not {"/pfs_v2.API/ModifyFile", "/pps_v2.API/CreatePipeline", "/pps_v2.API/RunCron"} & paths


def test_the_check_catches_a_dropped_row_and_a_served_rpc(unserved: list[RpcMethod]) -> None:
    text = README.read_text()
    snapshot_row = next(line for line in section(text).splitlines() if line.startswith("| `snapshot.API`"))
    without_row = text.replace(snapshot_row + "\n", "")
    assert "/snapshot.API/CreateSnapshot: not served, but missing from the table" in problems(
        without_row, unserved
    )
    with_served = text.replace(snapshot_row, snapshot_row + "\n| `pfs_v2.API` | `CreateRepo` | wrong |")
    assert "/pfs_v2.API/CreateRepo: served, but listed as not served" in problems(with_served, unserved)
    all_pfs = text.replace(snapshot_row, snapshot_row + "\n| `pfs_v2.API` | all | wrong |")
    assert "/pfs_v2.API/CreateRepo: served, but its service's row says all" in problems(all_pfs, unserved)


def test_unserved_rpcs_answer_unimplemented_over_the_wire(pachd_server, unserved: list[RpcMethod]) -> None:
    """Each computed-unserved RPC, called on a running server, answers what the table says."""
    with grpc.insecure_channel(f"{pachd_server.connect_host}:{pachd_server.port}") as channel:
        for method in unserved:
            call = getattr(channel, method.kind)(
                method.path, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            request = iter([b""]) if method.kind.startswith("stream_") else b""
            with pytest.raises(grpc.RpcError) as info:
                response = call(request, timeout=10)
                if method.kind.endswith("_stream"):
                    list(response)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, method.path
            assert info.value.details() == unserved_message(method), method.path


def test_pachd_lite_rpcs_prints_served_and_unserved_per_service(capsys: pytest.CaptureFixture) -> None:
    from pachd_lite.cli import main

    assert main(["rpcs"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["storage.Fileset"] == "0 served, 6 unserved: " + " ".join(
        sorted(m.name for m in load_methods().values() if m.service == "storage.Fileset")
    )
    assert lines["transaction_v2.API"].endswith(" served, 0 unserved: -")
    assert "RunCron" not in lines["pps_v2.API"] and "QueryLoki" in lines["pps_v2.API"]
