"""Fixtures for pachd-lite's domain tests (no gRPC, no server threads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pachd_lite.server import open_context


@pytest.fixture
def ctx(tmp_path: Path):
    """A storage context on a fresh root, as the server opens it."""
    ctx = open_context(tmp_path / "root")
    yield ctx
    ctx.db.close()
    ctx.blobs.close()
