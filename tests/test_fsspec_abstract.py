"""fsspec's own abstract test suite (copy, get, put, pipe, open) on the ``msc`` filesystem.

Runs on the ``file`` backend and on both S3 servers (rclone, moto), each profile written
to an ``MSC_CONFIG`` file so the filesystem resolves ``msc://fsx/...`` as users' code does.
Directories are implicit on every backend (``mkdir`` creates nothing), hence
``supports_empty_directories`` is false.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

from manystore import shortcuts
from manystore.contrib.async_fs import MultiStorageAsyncFileSystem

from .conftest import make_backend

FSSPEC_BACKENDS = ["file", "s3-rclone", "s3-moto"]
PROFILE = "fsx"


def use_profile(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Write an MSC config with profile ``fsx`` on ``backend`` and point ``MSC_CONFIG`` at it."""
    profile = make_backend(backend, request, tmp_path).config["profiles"]["test"]
    config = tmp_path / "msc_config.json"
    config.write_text(json.dumps({"profiles": {PROFILE: profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    shortcuts.reset_cache()
    return profile


class MscFixtures(AbstractFixtures):
    """Fixtures of the abstract suite for ``msc://fsx/`` on each backend."""

    @pytest.fixture(params=FSSPEC_BACKENDS)
    def msc_backend(
        self, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> str:
        use_profile(request.param, request, tmp_path, monkeypatch)
        return str(request.param)

    @pytest.fixture
    def fs(self, msc_backend: str) -> MultiStorageAsyncFileSystem:
        return MultiStorageAsyncFileSystem()

    @pytest.fixture
    def fs_path(self, msc_backend: str) -> str:
        return PROFILE

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False


class TestMscCopy(AbstractCopyTests, MscFixtures):
    pass


class TestMscGet(AbstractGetTests, MscFixtures):
    pass


class TestMscPut(AbstractPutTests, MscFixtures):
    pass


class TestMscPipe(AbstractPipeTests, MscFixtures):
    pass


class TestMscOpen(AbstractOpenTests, MscFixtures):
    pass
