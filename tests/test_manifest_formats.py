"""Manifest part formats (JSONL, Parquet), ``allow_overwrites``, and manifests exchanged with MSC 1.3.1."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.generators import ManifestFormat, ManifestMetadataGenerator
from manystore.providers.manifest_formats import decode_part, encode_part, format_of

from .conftest import Backend

ROOT = Path(__file__).resolve().parent.parent
MSC_PYTHON = Path(
    os.environ.get("MANYSTORE_MSC_PYTHON", "/work/main/.tools/msc-venv/bin/python")
    if not (ROOT / ".tools" / "msc-venv" / "bin" / "python").exists()
    else ROOT / ".tools" / "msc-venv" / "bin" / "python"
)
KEYS = {"a/1.txt": b"1", "a/b/2.bin": b"22", "c.txt": b"333", "d/e/f/4": b"4444"}


def _manifest_client(config: dict[str, Any], **options: Any) -> StorageClient:
    config = copy.deepcopy(config)
    options = {"manifest_path": ".msc_manifests", **options}
    config["profiles"]["test"]["metadata_provider"] = {"type": "manifest", "options": options}
    return StorageClient(StorageClientConfig.from_dict(config, "test"))


def _sizes(client: StorageClient) -> dict[str, int]:
    return {m.key: m.content_length for m in client.list("")}


@pytest.mark.parametrize("fmt", [ManifestFormat.JSONL, ManifestFormat.PARQUET, "parquet"])
def test_generated_manifest_loads_in_each_format(backend: Backend, fmt: ManifestFormat | str) -> None:
    client = backend.client
    for key, body in KEYS.items():
        client.write(key, body)
    ManifestMetadataGenerator.generate_and_write_manifest(client, client, manifest_format=fmt)
    index = json.loads(client.read(".msc_manifests/msc_manifest_index.json"))
    assert index["format"] == format_of(fmt).value
    assert all(p["path"].endswith("." + format_of(fmt).value) for p in index["parts"])
    via_manifest = _manifest_client(backend.config)
    assert _sizes(via_manifest) == {k: len(v) for k, v in KEYS.items()}
    assert via_manifest.info("a/b/2.bin").content_length == 2
    assert via_manifest.read("c.txt") == b"333"


def test_writable_manifest_commits_parquet(backend: Backend) -> None:
    client = _manifest_client(backend.config, writable=True, manifest_format="parquet")
    client.write("x/one", b"1")
    client.write("x/two", b"22")
    client.commit_metadata()
    index = json.loads(backend.client.read(".msc_manifests/msc_manifest_index.json"))
    assert index["format"] == "parquet"
    assert _sizes(_manifest_client(backend.config)) == {"x/one": 1, "x/two": 2}


def test_allow_overwrites(backend: Backend) -> None:
    client = backend.client
    client.write("old", b"o")
    ManifestMetadataGenerator.generate_and_write_manifest(client, client)
    client.delete("old")
    client.write("new", b"nn")
    # As in 1.3.1 the existing manifest is updated: its entries stay, listed objects are added.
    ManifestMetadataGenerator.generate_and_write_manifest(client, client, allow_overwrites=False)
    assert _sizes(_manifest_client(backend.config)) == {"old": 1, "new": 2}
    client.write("new", b"nnnn")
    index_before = client.read(".msc_manifests/msc_manifest_index.json")
    with pytest.raises(FileExistsError, match=r"'new' is already in the manifest.*allow_overwrites"):
        ManifestMetadataGenerator.generate_and_write_manifest(client, client, allow_overwrites=False)
    assert client.read(".msc_manifests/msc_manifest_index.json") == index_before
    assert _sizes(_manifest_client(backend.config)) == {"old": 1, "new": 2}
    ManifestMetadataGenerator.generate_and_write_manifest(client, client)
    assert _sizes(_manifest_client(backend.config)) == {"old": 1, "new": 4}


def test_part_codec_round_trip() -> None:
    records = [
        {"key": "a", "size_bytes": 1, "last_modified": "2024-01-02T03:04:05+00:00", "metadata": {"m": "1"}},
        {"key": "b", "size_bytes": 2, "last_modified": "2024-01-02T03:04:05+00:00", "etag": "e"},
    ]
    for fmt in ManifestFormat:
        back = decode_part(encode_part(records, fmt), fmt)
        assert [(r["key"], r["size_bytes"], r.get("metadata"), r.get("etag")) for r in back] == [
            ("a", 1, {"m": "1"}, None),
            ("b", 2, None, "e"),
        ]
    with pytest.raises(ValueError, match=r"'csv'.*jsonl"):
        format_of("csv")


# ------------------------------------------------------------- exchanged with MSC 1.3.1
_MSC_PRELUDE = """
import json, sys
from multistorageclient import StorageClient, StorageClientConfig
root, fmt, action = sys.argv[1], sys.argv[2], sys.argv[3]
profile = {"storage_provider": {"type": "file", "options": {"base_path": root}}}
"""
_MSC_WRITE = """
from multistorageclient.generators import ManifestMetadataGenerator
from multistorageclient.providers.manifest_formats import ManifestFormat
client = StorageClient(StorageClientConfig.from_dict({"profiles": {"d": profile}}, "d"))
ManifestMetadataGenerator.generate_and_write_manifest(client, client, manifest_format=ManifestFormat(fmt))
"""
_MSC_READ = """
profile["metadata_provider"] = {"type": "manifest", "options": {"manifest_path": ".msc_manifests"}}
client = StorageClient(StorageClientConfig.from_dict({"profiles": {"d": profile}}, "d"))
print(json.dumps({m.key: m.content_length for m in client.list(path="")}))
"""


def _pyarrow_only_path(root: Path) -> str:
    """A directory holding only this interpreter's pyarrow (the MSC venv has none; 1.3.1 needs it
    for Parquet, as its ``[parquet]`` extra)."""
    import pyarrow

    shelf = root.parent / "pyarrow-only"
    if not shelf.exists():
        shelf.mkdir()
        (shelf / "pyarrow").symlink_to(Path(pyarrow.__file__).parent)
    return str(shelf)


def _run_msc(root: Path, fmt: str, action: str) -> str:
    if not MSC_PYTHON.exists():
        pytest.fail(f"the MSC 1.3.1 interpreter {MSC_PYTHON} is missing: run `make .tools/msc-venv`")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MSC_CONFIG")}
    env["PYTHONPATH"] = _pyarrow_only_path(root)
    script = textwrap.dedent(_MSC_PRELUDE) + textwrap.dedent(_MSC_WRITE if action == "write" else _MSC_READ)
    # Leave without interpreter teardown: pyarrow's C++ thread pool, borrowed from this venv,
    # sometimes aborts at exit there ("terminate called without an active exception") after
    # the work is done and printed.
    script += "\nimport os\nsys.stdout.flush()\nos._exit(0)\n"
    done = subprocess.run(
        [str(MSC_PYTHON), "-c", script, str(root), fmt, action],
        capture_output=True,
        text=True,
        cwd="/",
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _file_config(root: Path) -> dict[str, Any]:
    return {"profiles": {"test": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}}}


def _populate(root: Path) -> None:
    for key, body in KEYS.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_manifest_written_by_msc_loads_in_manystore(tmp_path: Path, fmt: str) -> None:
    _populate(tmp_path)
    _run_msc(tmp_path, fmt, "write")
    dated = list((tmp_path / ".msc_manifests").glob("*/msc_manifest_index.json"))
    assert len(dated) == 1  # 1.3.1's layout: .msc_manifests/<time>/msc_manifest_index.json
    assert json.loads(dated[0].read_text())["format"] == fmt
    client = _manifest_client(_file_config(tmp_path))
    assert _sizes(client) == {k: len(v) for k, v in KEYS.items()}
    assert client.read("d/e/f/4") == b"4444"


@pytest.mark.parametrize("fmt", [ManifestFormat.JSONL, ManifestFormat.PARQUET])
def test_manifest_written_by_manystore_loads_in_msc(tmp_path: Path, fmt: ManifestFormat) -> None:
    _populate(tmp_path)
    client = StorageClient(StorageClientConfig.from_dict(_file_config(tmp_path), "test"))
    ManifestMetadataGenerator.generate_and_write_manifest(client, client, manifest_format=fmt)
    assert json.loads(_run_msc(tmp_path, fmt.value, "read")) == {k: len(v) for k, v in KEYS.items()}


def test_manystore_updates_a_manifest_written_by_msc(tmp_path: Path) -> None:
    _populate(tmp_path)
    _run_msc(tmp_path, "parquet", "write")
    client = StorageClient(StorageClientConfig.from_dict(_file_config(tmp_path), "test"))
    client.write("z/new", b"55555")
    with pytest.raises(FileExistsError, match="already in the manifest"):
        ManifestMetadataGenerator.generate_and_write_manifest(client, client, allow_overwrites=False)
    ManifestMetadataGenerator.generate_and_write_manifest(client, client, manifest_format="jsonl")
    expected = {k: len(v) for k, v in KEYS.items()} | {"z/new": 5}
    assert _sizes(_manifest_client(_file_config(tmp_path))) == expected
    assert json.loads(_run_msc(tmp_path, "jsonl", "read")) == expected
