"""``manystore samples ls|schema|show`` and ``manystore index ...``.

Shards are written with ``write_samples`` on every backend (``backend`` fixture) for
``ls``/``schema``/``show``; the index commands run on a local SQLite file and on an index kept
in moto S3 (``msc://`` URL). The CLI runs in-process (``manystore.cli.main``) and, once, as
``python -m manystore`` in a subprocess.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from manystore.cli import main
from manystore.samples import Index, NDArray, packable, write_samples
from manystore.samples.schema import schema_record

from .conftest import Backend, s3_profile
from .servers import S3Server

ROOT = Path(__file__).resolve().parent.parent
THIS = "tests.test_samples_cli"


@packable
class Img:
    """An image and its label."""

    image: NDArray[np.uint8]
    label: int
    caption: str | None = None


@packable
class Other:
    text: str


@packable
class Loose:
    image: NDArray
    label: int


def make(n: int) -> list[Img]:
    rng = np.random.default_rng(7)
    return [
        Img(rng.integers(0, 256, (3, 8, 8), dtype=np.uint8), i, None if i % 2 else f"cap{i}")
        for i in range(n)
    ]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stats(a: np.ndarray) -> str:
    return f"uint8[3, 8, 8] min={a.min()} max={a.max()} mean={a.astype('float64').mean():.4g}"


@pytest.fixture
def msc_config(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    config = tmp_path / "msc.json"
    config.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    monkeypatch.delenv("MANYSTORE_INDEX", raising=False)
    return backend


# ------------------------------------------------------------------ samples ls|schema|show on every backend
def test_samples_ls_on_every_backend(msc_config: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    backend = msc_config
    urls = write_samples(make(10), "ds/train-%06d.tar", maxcount=4, client=backend.client)
    assert len(urls) == 3
    reader = backend.other_client()
    sizes = [reader.info(f"ds/train-{i:06d}.tar").content_length for i in range(3)]

    code, out, err = run(capsys, "samples", "ls", "msc://test/ds/")
    assert code == 0, err
    expected = [
        f"{n:>10}  {s:>12}  msc://test/ds/train-{i:06d}.tar"
        for i, (n, s) in enumerate(zip([4, 4, 2], sizes, strict=True))
    ]
    assert out.splitlines() == [*expected, f"{10:>10}  {sum(sizes):>12}  total (3 shards)"]

    code, out, err = run(capsys, "samples", "ls", "msc://test/ds/train-{000000..000002}.tar", "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert [(r["samples"], r["bytes"], r["index"]) for r in listing["shards"]] == [
        (4, sizes[0], "sidecar"),
        (4, sizes[1], "sidecar"),
        (2, sizes[2], "sidecar"),
    ]
    assert listing["total"] == {"shards": 3, "samples": 10, "bytes": sum(sizes)}

    # without the sidecar the count comes from a walk of the tar headers
    backend.client.delete("ds/train-000001.tar.idx")
    code, out, _ = run(capsys, "samples", "ls", "--json", "msc://test/ds/train-000001.tar")
    row = json.loads(out)["shards"][0]
    assert (code, row["samples"], row["bytes"], row["index"]) == (0, 4, sizes[1], "scan")

    # a raw key prefix; a brace pattern with a missing shard lists the others, reports it, exits 1
    code, out, _ = run(capsys, "samples", "ls", "msc://test/ds/train-00000")
    assert code == 0 and out.splitlines()[-1].endswith("total (3 shards)")
    code, out, err = run(capsys, "samples", "ls", "msc://test/ds/train-{000002..000003}.tar")
    assert code == 1
    assert out.splitlines()[-1] == f"{2:>10}  {sizes[2]:>12}  total (1 shard)"
    assert err == "manystore: samples ls: msc://test/ds/train-000003.tar: not found\n"


def test_samples_schema_and_show_on_every_backend(
    msc_config: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = msc_config
    samples = make(6)
    write_samples(samples, "sh/part-%03d.tar", maxcount=4, client=backend.client)

    code, out, err = run(capsys, "samples", "schema", "msc://test/sh/")
    assert code == 0, err
    assert out.splitlines() == [
        "msc://test/sh/part-000.tar  (inferred from the first sample, 000000000.msgpack)",
        "  image    uint8[3, 8, 8]",
        "  label    int",
        "  caption  str",
    ]
    code, out, _ = run(capsys, "samples", "schema", "msc://test/sh/", "--json")
    record = json.loads(out)
    assert [(f["name"], f["fieldType"]) for f in record["fields"]] == [
        ("image", {"$type": "local#ndarray", "dtype": "uint8"}),
        ("label", {"$type": "local#primitive", "primitive": "int"}),
        ("caption", {"$type": "local#primitive", "primitive": "str"}),
    ]
    assert record["fields"][0]["shape"] == [3, 8, 8] and record["fields"][0]["encoding"] == "npy"
    assert record["inferredFrom"] == {"url": "msc://test/sh/part-000.tar", "member": "000000000.msgpack"}

    code, out, err = run(
        capsys, "samples", "schema", "msc://test/sh/part-001.tar", "--type", f"{THIS}:Img", "--json"
    )
    assert code == 0, err
    declared = json.loads(out)
    assert declared["$ref"] == f"local://schemas/{THIS}.Img@1.0.0"
    assert declared["fields"] == schema_record(Img)["fields"]

    code, out, err = run(capsys, "samples", "show", "msc://test/sh/", "-n", "5")
    assert code == 0, err
    lines = out.splitlines()
    headers = [line for line in lines if not line.startswith("  ")]
    assert headers == [f"msc://test/sh/part-000.tar  key={i:09d}" for i in range(4)] + [
        "msc://test/sh/part-001.tar  key=000000004"
    ]
    assert lines[1:4] == [f"  image    {stats(samples[0].image)}", "  label    0", "  caption  'cap0'"]
    assert lines[5:8] == [f"  image    {stats(samples[1].image)}", "  label    1", "  caption  None"]

    code, typed, err = run(
        capsys, "samples", "show", "msc://test/sh/part-{000..001}.tar", "-n", "5", "--type", f"{THIS}:Img"
    )
    assert code == 0, err
    assert typed == out  # decoded through the class: the same fields and values


# ------------------------------------------------------------------ formatting, pickles, errors (local files)
def raw_shard(path: Path, maps: list[dict[str, Any]]) -> str:
    """A shard of hand-packed msgpack maps (no type checks), written with write_samples."""
    return write_samples(
        [
            {"__key__": f"k{i:03d}", "msgpack": msgpack.packb(m, use_bin_type=True)}
            for i, m in enumerate(maps)
        ],
        str(path),
    )[0]


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def compact(a: np.ndarray) -> bytes:
    """atdata 0.7's compact array form, built here independently."""
    dt = a.dtype.str.encode()
    return struct.pack("<B", len(dt)) + dt + struct.pack(f"<B{a.ndim}q", a.ndim, *a.shape) + a.tobytes()


def test_show_truncates_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    floats = np.linspace(-1.0, 3.0, 10, dtype=np.float32).reshape(2, 5)
    shard = raw_shard(
        tmp_path / "fmt.tar",
        [
            {
                "blob": bytes(range(256)) * 4,
                "text": "y" * 300,
                "f": compact(floats),
                "words": npy(np.array(["ab", "cd"])),
                "empty": npy(np.zeros((0, 3), np.int16)),
                "tags": ["a", "b"],
                "meta": {"k": 1},
                "ok": True,
                "score": 0.5,
            }
        ],
    )
    code, out, err = run(capsys, "samples", "show", shard)
    assert code == 0, err
    assert out.splitlines() == [
        f"{shard}  key=k000",
        "  blob   bytes[1024] b'\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t\\n\\x0b\\x0c\\r\\x0e\\x0f\\x10\\x11\\x12\\x13\\x14\\x15\\x16\\x17'…",
        "  text   '" + "y" * 80 + "…' (300 chars)",
        "  f      float32[2, 5] min=-1 max=3 mean=1",
        "  words  U2[2] ['ab', 'cd']",
        "  empty  int16[0, 3] (empty)",
        "  tags   list[2] ['a', 'b']",
        "  meta   dict[1] {'k': 1}",
        "  ok     True",
        "  score  0.5",
    ]
    code, out, _ = run(capsys, "samples", "schema", shard, "--json")
    fields = {f["name"]: f for f in json.loads(out)["fields"]}
    assert fields["f"]["fieldType"] == {"$type": "local#ndarray", "dtype": "float32"}
    assert fields["f"]["encoding"] == "compact" and fields["f"]["shape"] == [2, 5]
    assert fields["blob"]["fieldType"] == {"$type": "local#primitive", "primitive": "bytes"}
    assert fields["tags"]["fieldType"] == {
        "$type": "local#array",
        "items": {"$type": "local#primitive", "primitive": "str"},
    }
    assert fields["ok"]["fieldType"]["primitive"] == "bool"


def test_show_never_unpickles_without_allow_pickle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.mkdir, (str(marker),))  # runs when the array is unpickled

    evil = np.empty(1, dtype=object)
    evil[0] = Evil()
    shard = raw_shard(tmp_path / "evil.tar", [{"image": npy(evil), "label": 1}])

    code, out, err = run(capsys, "samples", "show", shard)
    assert code == 0, err
    assert (
        "  image  object[1] (pickled object array; not loaded: --allow-pickle loads it)" in out.splitlines()
    )
    code, out, _ = run(capsys, "samples", "schema", shard)
    assert code == 0 and "  image  object[1] (pickled)" in out.splitlines()
    code, _, err = run(capsys, "samples", "show", shard, "--type", f"{THIS}:Loose")
    assert code == 1 and "refused to load a pickled" in err and "--allow-pickle" in err
    assert not marker.exists()

    code, out, err = run(capsys, "samples", "show", shard, "--allow-pickle")
    assert code == 0, err
    assert marker.is_dir()  # opted in: the pickle ran
    assert "  image  object[1] [None]" in out.splitlines()


def test_tar_gz_shards_are_streamed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = make(3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i, s in enumerate(samples):
            info = tarfile.TarInfo(f"s{i}.msgpack")
            info.size = len(s.packed)
            tar.addfile(info, io.BytesIO(s.packed))
    path = tmp_path / "wds.tar.gz"
    path.write_bytes(gzip.compress(buf.getvalue()))
    code, out, err = run(capsys, "samples", "ls", "--json", str(path))
    assert code == 0, err
    row = json.loads(out)["shards"][0]
    assert (row["samples"], row["bytes"], row["index"]) == (3, path.stat().st_size, "stream")
    code, out, _ = run(capsys, "samples", "show", str(path), "-n", "2")
    assert [line for line in out.splitlines() if "key=" in line] == [f"{path}  key=s0", f"{path}  key=s1"]


def test_samples_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_samples(make(2), str(tmp_path / "d" / "t-%02d.tar"))
    good = str(tmp_path / "d" / "t-00.tar")
    missing = str(tmp_path / "d" / "t-07.tar")
    assert run(capsys, "samples", "show", missing) == (
        1,
        "",
        f"manystore: samples show: {missing}: not found\n",
    )
    code, _, err = run(capsys, "samples", "ls", str(tmp_path / "d" / "t-{00..0"))
    assert code == 2 and "unclosed '{'" in err
    code, _, err = run(capsys, "samples", "ls", str(tmp_path / "nothing"))
    assert code == 1 and "no shards" in err and str(tmp_path / "nothing") in err
    code, _, err = run(capsys, "samples", "show", good, "-n", "0")
    assert code == 2 and err == "manystore: samples show: -n 0: expected a number of samples >= 1\n"
    code, _, err = run(capsys, "samples", "show", good, "--type", "Img")
    assert code == 2 and "Img: expected module:Class" in err
    code, _, err = run(capsys, "samples", "show", good, "--type", f"{THIS}:Nope")
    assert code == 2 and f"module '{THIS}' has no attribute 'Nope'" in err
    code, _, err = run(capsys, "samples", "schema", good, "--type", "json:dumps")
    assert code == 2 and "expected a @packable class" in err
    code, _, err = run(capsys, "samples", "show", good, "--type", f"{THIS}:Other")
    assert code == 1 and "'000000000.msgpack'" in err and "Other" in err
    code, _, err = run(capsys, "samples", "schema", good, "--type", f"{THIS}:Other")
    assert code == 1 and f"does not decode as {THIS}:Other" in err

    corrupt = write_samples([{"__key__": "bad", "msgpack": b"\xc1\xc1"}], str(tmp_path / "corrupt.tar"))[0]
    code, _, err = run(capsys, "samples", "show", corrupt)
    assert code == 1 and err.startswith(
        f"manystore: samples show: {corrupt}: member 'bad.msgpack': corrupt msgpack"
    )
    (tmp_path / "notar.tar").write_bytes(b"x" * 700)
    code, _, err = run(capsys, "samples", "ls", str(tmp_path / "notar.tar"))
    assert code == 1 and str(tmp_path / "notar.tar") in err


# ------------------------------------------------------------------ index commands
def check_index_commands(capsys: pytest.CaptureFixture[str], location: str, shard_base: str) -> None:
    """The index commands end to end on ``location`` (given as ``MANYSTORE_INDEX``)."""
    code, _, err = run(capsys, "index", "ls")
    assert (
        code == 2
        and err
        == f"manystore: index ls: {location}: no index there (`manystore index publish` creates one)\n"
    )

    code, out, err = run(capsys, "index", "publish", f"{THIS}:Img")
    ref = f"local://schemas/{THIS}.Img@1.0.0"
    assert (code, out, err) == (0, ref + "\n", "")
    code, out, _ = run(capsys, "index", "publish", f"{THIS}:Other", "--version", "0.2")
    assert code == 0 and out == f"local://schemas/{THIS}.Other@0.2\n"
    code, out, _ = run(capsys, "index", "schemas")
    assert out.splitlines() == [f"{ref}  (3 fields)", f"local://schemas/{THIS}.Other@0.2  (1 field)"]

    code, out, err = run(
        capsys, "index", "add", "train", shard_base + "/train-{000..002}.tar", "--schema-ref", ref,
        "--metadata", "split=train", "--metadata", "n=30", "--metadata", 'tags=["a"]',
    )  # fmt: skip
    assert (code, err) == (0, "") and out == f"added train: 3 shards, schema {ref}\n"
    code, out, _ = run(capsys, "index", "add", "val", shard_base + "/val.tar", "--schema-ref", ref)
    assert code == 0

    code, out, _ = run(capsys, "index", "ls")
    assert out.splitlines() == [f"train    3 shards  {ref}", f"val       1 shard  {ref}"]
    code, out, _ = run(capsys, "index", "show", "train", "--json")
    entry = json.loads(out)
    assert entry["data_urls"] == [f"{shard_base}/train-{i:03d}.tar" for i in range(3)]
    assert entry["metadata"] == {"split": "train", "n": 30, "tags": ["a"]}
    index = Index(location)
    assert index.get_dataset("train").to_dict() == entry  # what the command stored, read by the API
    code, out, _ = run(capsys, "index", "show", "train")
    assert out.splitlines()[:3] == ["name:      train", f"schema:    {ref}", f"cid:       {entry['cid']}"]
    assert out.splitlines()[-3:] == [f"  {u}" for u in entry["data_urls"]]
    code, out, _ = run(capsys, "index", "schema", ref)
    assert code == 0 and json.loads(out) == index.get_schema(ref)
    code, out, _ = run(capsys, "index", "ls", "--json")
    assert [e["name"] for e in json.loads(out)] == ["train", "val"]

    # bad values: exit 2, naming the value; a conflicting name: exit 1
    code, _, err = run(capsys, "index", "show", "nope")
    assert code == 2 and err.startswith("manystore: index show: nope: no dataset 'nope'")
    code, _, err = run(capsys, "index", "schema", "local://schemas/x.Y@1")
    assert code == 2 and err.startswith("manystore: index schema: local://schemas/x.Y@1: no schema")
    code, _, err = run(capsys, "index", "add", "x", "s3://b/x.tar", "--schema-ref", "local://schemas/x.Y@1")
    assert code == 2 and "local://schemas/x.Y@1" in err and "publish it" in err
    code, _, err = run(capsys, "index", "add", "x", "s3://b/x.tar", "--schema-ref", "Img")
    assert code == 2 and err.startswith(
        "manystore: index add: Img: schema reference 'Img' is not of the form"
    )
    code, _, err = run(
        capsys, "index", "add", "x", "s3://b/x.tar", "--schema-ref", ref, "--metadata", "novalue"
    )
    assert code == 2 and "novalue: --metadata expects KEY=VALUE" in err
    code, _, err = run(capsys, "index", "add", "train", "s3://b/other.tar", "--schema-ref", ref)
    assert code == 1 and "dataset 'train' is already in index" in err
    code, _, err = run(capsys, "index", "publish", "json:dumps")
    assert code == 2 and "json:dumps: expected a @packable class" in err
    assert [e.name for e in Index(location).list_datasets()] == ["train", "val"]  # nothing else stored


def test_index_commands_local_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    location = str(tmp_path / "idx" / "index.db")
    monkeypatch.delenv("MANYSTORE_INDEX", raising=False)
    code, _, err = run(capsys, "index", "ls")
    assert (
        code == 2
        and err == "manystore: index ls: no index: give --index PATH_OR_URL or set MANYSTORE_INDEX\n"
    )
    code, _, err = run(capsys, "index", "ls", "--index", location)
    assert code == 2 and not Path(location).exists()  # a reading command creates nothing
    monkeypatch.setenv("MANYSTORE_INDEX", location)
    check_index_commands(capsys, location, "msc://p/ds")
    # --index before or after the action wins over the environment
    other = str(tmp_path / "other.db")
    assert run(capsys, "index", "--index", other, "publish", f"{THIS}:Other")[0] == 0
    assert (
        run(capsys, "index", "schemas", "--index", other)[1]
        == f"local://schemas/{THIS}.Other@1.0.0  (1 field)\n"
    )
    assert run(capsys, "index", "--index", other, "ls") == (0, "", "")


def test_index_commands_on_s3_moto(
    moto_server: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"profiles": {"idx": s3_profile(moto_server, f"manystore-test/cli-index-{tmp_path.name}")}}
    (tmp_path / "msc.json").write_text(json.dumps(config))
    monkeypatch.setenv("MSC_CONFIG", str(tmp_path / "msc.json"))
    location = "msc://idx/meta/index.db"
    monkeypatch.setenv("MANYSTORE_INDEX", location)
    check_index_commands(capsys, location, "msc://idx/shards")
    import manystore

    assert manystore.read(location).startswith(b"SQLite format 3\x00")  # the file lives in the store
    code, _, err = run(capsys, "index", "ls", "--index", "msc://idx/meta/")
    assert code == 2 and "msc://idx/meta/" in err
    code, _, err = run(capsys, "index", "ls", "--index", "msc://nosuchprofile/index.db")
    assert code == 2 and "nosuchprofile" in err


def test_index_commands_on_redis(redis_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    location = f"redis://127.0.0.1:{redis_server.port}/3"
    Index(location)._store._redis.flushdb()
    assert run(capsys, "index", "--index", location, "publish", f"{THIS}:Img")[0] == 0
    ref = f"local://schemas/{THIS}.Img@1.0.0"
    code, out, err = run(
        capsys, "index", "--index", location, "add", "r", "s3://b/r-{0..1}.tar", "--schema-ref", ref
    )
    assert code == 0, err
    assert run(capsys, "index", "--index", location, "ls") == (0, f"r    2 shards  {ref}\n", "")
    assert Index(location).get_dataset("r").data_urls == ["s3://b/r-0.tar", "s3://b/r-1.tar"]
    secret = f"redis://user:s3cr3t@127.0.0.1:{redis_server.port}/3"
    code, out, err = run(capsys, "index", "--index", secret, "ls")
    assert code != 0 and err.startswith("manystore: index ls") and "s3cr3t" not in err + out


# ------------------------------------------------------------------ as a program
def test_python_m_manystore_subprocess(tmp_path: Path) -> None:
    write_samples(make(5), str(tmp_path / "d" / "s-%02d.tar"), maxcount=2)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "MANYSTORE_INDEX": str(tmp_path / "index.db"),
        "HOME": str(tmp_path),
    }

    def program(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "manystore", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    proc = program("samples", "ls", str(tmp_path / "d" / "s-{00..02}.tar"))
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["2", "2", "1", "5"]
    proc = program("samples", "show", str(tmp_path / "d"), "-n", "1", "--type", f"{THIS}:Img")
    assert proc.returncode == 0 and proc.stdout.splitlines()[2] == "  label    0", proc.stderr
    proc = program("index", "publish", f"{THIS}:Img")
    assert proc.returncode == 0 and proc.stdout == f"local://schemas/{THIS}.Img@1.0.0\n", proc.stderr
    proc = program("index", "show", "missing")
    assert proc.returncode == 2 and "no dataset 'missing'" in proc.stderr
    helped = program("--help")
    assert helped.returncode == 0 and "samples" in helped.stdout and "index" in helped.stdout


def test_docs_list_every_action() -> None:
    """docs/cli.md and docs/samples.md name every samples/index action the parser has."""
    import argparse

    from manystore.cli import _build_parser

    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cli_doc = (ROOT / "docs" / "cli.md").read_text()
    samples_doc = (ROOT / "docs" / "samples.md").read_text().split("## Command line", 1)[1]
    for group in ("samples", "index"):
        actions = next(
            a for a in sub.choices[group]._actions if isinstance(a, argparse._SubParsersAction)
        ).choices
        assert len(actions) == (3 if group == "samples" else 6)
        for action in actions:
            assert f"{group} {action}" in samples_doc or f"`{action}" in samples_doc, (group, action)
            assert f"{group} {action}" in cli_doc or f"`{action} " in cli_doc, (group, action)
