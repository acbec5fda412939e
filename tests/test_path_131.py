"""MSC 1.3.1 signatures of ``manystore.Path``: ``is_file``/``is_dir`` (``strict``), ``open``
(``buffering``, ``encoding``, ``errors``, ``newline``), ``read_text``/``write_text`` defaults,
``touch(exist_ok=False)``, ``samefile(other_path)`` and ``joinpath(*pathsegments)``; on the file
system and one S3 server."""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from manystore import shortcuts
from manystore.pathlib import MultiStoragePath as Path

from .conftest import Backend, make_backend


def _reachable(
    backend: Backend, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, config: Any
) -> None:
    file = tmp_path / "msc.json"
    file.write_text(json.dumps(config))
    monkeypatch.setenv("MSC_CONFIG", str(file))
    shortcuts.reset_cache()


@pytest.fixture(params=["file", "s3-moto"])
def msc(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """A backend reachable as ``msc://test/``; ``msc://man/`` is the same store behind a writable manifest."""
    backend = make_backend(request.param, request, tmp_path)
    config = copy.deepcopy(backend.config)
    managed = copy.deepcopy(config["profiles"]["test"])
    managed["metadata_provider"] = {"type": "manifest", "options": {"manifest_path": ".m", "writable": True}}
    config["profiles"]["man"] = managed
    _reachable(backend, tmp_path, monkeypatch, config)
    yield backend
    shortcuts.reset_cache()


def test_is_file_is_dir_strict(msc: Backend) -> None:
    plain = Path("msc://test/d/f.txt")
    plain.write_bytes(b"x")
    for strict in (True, False):  # no metadata provider: strict changes nothing
        assert plain.is_file(strict) and not plain.is_dir(strict)
        assert Path("msc://test/d").is_dir(strict=strict) and not Path("msc://test/d").is_file(strict)
    managed = Path("msc://man/p/new.txt")
    managed.write_bytes(b"pending")  # registered with the manifest, not committed
    assert not managed.is_file() and managed.is_file(strict=False)
    assert not Path("msc://man/p").is_dir() and Path("msc://man/p").is_dir(strict=False)
    assert not Path("msc://man/p/other").is_file(strict=False)
    shortcuts.commit_metadata("msc://man/")
    assert managed.is_file() and Path("msc://man/p").is_dir()
    managed.unlink()  # removal pending: committed view still has it, the pending view does not
    assert managed.is_file() and not managed.is_file(strict=False)
    assert Path("msc://man/p").is_dir() and not Path("msc://man/p").is_dir(strict=False)


def test_open_text_options(msc: Backend) -> None:
    path = Path("msc://test/t.txt")
    with path.open("w", -1, "latin-1", "replace", "\r\n") as fh:
        fh.write("caf\u00e9 \u20ac\nend\n")
    assert path.read_bytes() == b"caf\xe9 ?\r\nend\r\n"  # latin-1, the euro replaced, CRLF
    with path.open("r", encoding="latin-1", newline="") as fh:
        assert fh.read() == "caf\u00e9 ?\r\nend\r\n"  # newline="" keeps the CRLFs
    with path.open("r", encoding="latin-1") as fh:
        assert fh.read() == "caf\u00e9 ?\nend\n"  # universal newlines
    path.write_bytes(b"ok \xff\n")
    with pytest.raises(UnicodeDecodeError), path.open("r") as fh:
        fh.read()
    with path.open("r", errors="surrogateescape") as fh:
        assert fh.read() == "ok \udcff\n"
    with path.open("rb", buffering=0) as fh:
        assert fh.read() == b"ok \xff\n"
    with pytest.raises(ValueError, match="binary mode 'rb' doesn't take an errors argument"):
        path.open("rb", errors="strict")


def test_text_defaults_touch_samefile_joinpath(msc: Backend) -> None:
    path = Path("msc://test/x/u.txt")
    path.write_text("\u00e9")
    assert path.read_bytes() == b"\xc3\xa9" and path.read_text() == "\u00e9"  # utf-8 by default
    with pytest.raises(UnicodeEncodeError):
        path.write_text("\u20ac", "latin-1")  # errors='strict' by default
    assert path.write_text("\u20ac", "latin-1", "replace") == 1 and path.read_text("latin-1") == "?"
    path.write_bytes(b"\xff")
    with pytest.raises(UnicodeDecodeError):
        path.read_text()
    assert path.read_text(errors="ignore") == ""
    with pytest.raises(FileExistsError):
        path.touch()  # exist_ok=False by default
    path.touch(exist_ok=True)
    assert path.read_bytes() == b"\xff"  # left as it was
    fresh = Path("msc://test/x/fresh")
    fresh.touch()
    assert fresh.read_bytes() == b""
    assert path.samefile(other_path="msc://test/x/../x/u.txt") and not path.samefile(other_path=fresh)
    assert Path("msc://test").joinpath("x", "u.txt") == path
    assert Path("msc://test").joinpath(*["x", "y"], "z") == Path("msc://test/x/y/z")
