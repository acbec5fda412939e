"""manystore.samples writing: ShardWriter / write_samples on every backend.

Shards are checked with tools independent of ours: ``tarfile`` + ``msgpack`` + ``numpy.load``
and the ``webdataset`` library; random access goes through ``manystore.batch`` (one ranged
GET per sample, counted by the fault proxy in front of moto).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.batch.archive import read_member
from manystore.samples import (
    NDArray,
    PickledArrayError,
    SampleTypeError,
    ShardWriter,
    decode_sample,
    packable,
    write_samples,
)

from .conftest import Backend, s3_profile
from .faultproxy import FaultProxy
from .servers import S3Server


@packable
class Img:
    image: NDArray
    label: int
    name: str


def make(n: int, side: int = 16) -> list[Img]:
    rng = np.random.default_rng(n)
    return [Img(rng.integers(0, 255, (3, side, side), dtype=np.uint8), i, f"s{i}") for i in range(n)]


def tar_members(raw: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        out = []
        for info in tar.getmembers():
            f = tar.extractfile(info)
            assert f is not None
            out.append((info.name, f.read()))
        return out


def independent_decode(data: bytes) -> dict[str, Any]:
    """atdata's format read without our code: msgpack map, arrays via numpy.load."""
    m = msgpack.unpackb(data, raw=False)
    m["image"] = np.load(io.BytesIO(m["image"]), allow_pickle=False)
    return m


def key_of(client: StorageClient, url: str) -> str:
    assert url.startswith(client.url_prefix), url
    return url[len(client.url_prefix) :]


def stored_names(backend: Backend, prefix: str) -> list[str]:
    """Everything stored under ``prefix`` (for a directory: every file, temp files included)."""
    if backend.name == "file":
        root = Path(backend.config["profiles"]["test"]["storage_provider"]["options"]["base_path"]) / prefix
        return (
            sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
        )
    client = backend.other_client()
    return sorted(o.key[len(prefix) :].lstrip("/") for o in client.list(prefix))


def open_uploads(backend: Backend) -> list[str]:
    """Multipart uploads left open on moto (elsewhere nothing to ask: Azure's uncommitted blocks
    and GCS resumable sessions are invisible until committed, and rclone's gofakes3 keeps its
    uploads in memory without ListMultipartUploads; the listing checks cover those)."""
    if not isinstance(backend.server, S3Server) or backend.server.name != "moto":
        return []
    base = backend.config["profiles"]["test"]["storage_provider"]["options"]["base_path"]
    bucket, _, prefix = base.partition("/")
    listing = backend.server.boto3_client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [u["Key"] for u in listing.get("Uploads", [])]


def test_shards_split_by_maxcount_with_sidecar_and_atdata_layout(backend: Backend) -> None:
    client = backend.client
    samples = make(25)
    urls = write_samples(samples, "ds/train-%06d.tar", maxcount=10, client=client)
    assert urls == [f"{client.url_prefix}ds/train-{i:06d}.tar" for i in range(3)]
    got: list[dict[str, Any]] = []
    counts = []
    for url in urls:
        key = key_of(client, url)
        members = tar_members(backend.other_client().read(key))
        counts.append(len(members))
        assert all(name.endswith(".msgpack") and name.count(".") == 1 for name, _ in members)
        got += [independent_decode(data) for _, data in members]
        index = json.loads(backend.other_client().read(key + ".idx"))
        assert len(json.dumps(index)) > 0
        assert sorted(m[0] if isinstance(m, list) else m["name"] for m in index["members"]) == sorted(
            n for n, _ in members
        )
    assert counts == [10, 10, 5]
    assert [g["label"] for g in got] == list(range(25)) and [g["name"] for g in got] == [
        s.name for s in samples
    ]
    assert all(np.array_equal(g["image"], s.image) for g, s in zip(got, samples, strict=True))


def test_shards_split_by_maxsize(backend: Backend) -> None:
    client = backend.client
    samples = make(30, side=24)  # ~1.9 KB of array per sample
    maxsize = 25_000
    urls = write_samples(samples, "sz/part-{shard:04d}.tar", maxsize=maxsize, client=client)
    assert len(urls) >= 3 and urls[0].endswith("sz/part-0000.tar")
    total = 0
    for url in urls:
        key = key_of(client, url)
        size = backend.other_client().info(key).content_length
        assert size <= maxsize, (url, size)
        n = len(tar_members(backend.other_client().read(key)))
        assert n >= 1
        total += n
    assert total == 30


def test_webdataset_library_reads_our_shards(backend: Backend, tmp_path: Path) -> None:
    wds = pytest.importorskip("webdataset", reason="webdataset is installed with the test extra")
    client = backend.client
    samples = make(12)
    urls = write_samples(samples, "w/shard-%03d.tar", maxcount=5, client=client)
    local = []
    for i, url in enumerate(urls):
        path = tmp_path / f"copy-{i}.tar"
        path.write_bytes(backend.other_client().read(key_of(client, url)))
        local.append(str(path))
    seen = list(wds.WebDataset(local, shardshuffle=False))
    assert [s["__key__"] for s in seen] == [f"{i:09d}" for i in range(12)]
    assert [s["msgpack"] for s in seen] == [s.packed for s in samples]
    assert [Img.from_bytes(s["msgpack"]) for s in seen] == samples


def test_random_access_reads_sample_k_from_the_index(backend: Backend) -> None:
    client = backend.client
    samples = make(9)
    urls = write_samples(samples, "ra/s-%02d.tar", maxcount=4, client=client)
    reader = backend.other_client()
    key = key_of(client, urls[1])
    sample = decode_sample(Img, read_member(reader, key, "000000005.msgpack"), member="000000005.msgpack")
    assert sample == samples[5]


def _failing(samples: list[Img], fail_at: int) -> Iterator[Img]:
    for i, s in enumerate(samples):
        if i == fail_at:
            raise RuntimeError("source broke")
        yield s


def test_exception_mid_shard_leaves_no_partial_shard(backend: Backend) -> None:
    client = backend.client
    samples = make(20)
    with (
        pytest.raises(RuntimeError, match="source broke"),
        ShardWriter("ab/x-%03d.tar", maxcount=8, client=client) as sink,
    ):
        for s in _failing(samples, 13):  # mid second shard
            sink.write(s)
    assert sink.urls == [f"{client.url_prefix}ab/x-000.tar"]
    assert stored_names(backend, "ab/") == ["x-000.tar", "x-000.tar.idx"]
    assert len(tar_members(backend.other_client().read("ab/x-000.tar"))) == 8
    assert open_uploads(backend) == []

    # write_samples is all or nothing: the complete first shard goes too.
    with pytest.raises(RuntimeError, match="source broke"):
        write_samples(_failing(samples, 13), "ab2/x-%03d.tar", maxcount=8, client=client)
    assert stored_names(backend, "ab2/") == []
    assert open_uploads(backend) == []


def test_bad_sample_aborts_and_names_field(backend: Backend) -> None:
    client = backend.client
    samples: list[Any] = make(3)
    samples[2].label = "two"  # wrong type set after construction
    with pytest.raises(SampleTypeError, match=r"Img\.label: expected int, got str"):
        write_samples(samples, "bad/x-%03d.tar", maxcount=10, client=client)
    assert stored_names(backend, "bad/") == []


def test_pickled_object_array_in_a_shard_is_refused(backend: Backend) -> None:
    """A shard built independently (tarfile + numpy.save(allow_pickle=True)) by an untrusted writer."""
    obj = np.array([{"payload": 1}, [2, 3]], dtype=object)
    npy = io.BytesIO()
    np.save(npy, obj, allow_pickle=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for key, image in (("a", np.zeros(2, np.uint8).tobytes()), ("b", None)):
            arr = npy.getvalue() if image is None else _npy(np.zeros(2, np.uint8))
            data = msgpack.packb({"image": arr, "label": 1, "name": key}, use_bin_type=True)
            info = tarfile.TarInfo(f"{key}.msgpack")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    backend.client.write("evil/shard.tar", buf.getvalue())
    reader = backend.other_client()
    assert decode_sample(Img, read_member(reader, "evil/shard.tar", "a.msgpack")).label == 1
    raw = read_member(reader, "evil/shard.tar", "b.msgpack")
    with pytest.raises(PickledArrayError) as ei:
        decode_sample(Img, raw, member="b.msgpack")
    assert ei.value.member == "b.msgpack" and isinstance(ei.value, ValueError)
    trusted = decode_sample(Img, raw, allow_pickle=True)
    assert trusted.image[0] == {"payload": 1}


def _npy(a: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, a)
    return out.getvalue()


def test_msc_url_pattern_and_post_callback(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "msc.json"
    config.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    done: list[str] = []
    samples = make(5)
    with ShardWriter("msc://test/u/t-{shard:03d}.tar", maxcount=2, start_shard=7, post=done.append) as sink:
        keys = [sink.write(s) for s in samples]
    assert sink.urls == done == [f"msc://test/u/t-{i:03d}.tar" for i in (7, 8, 9)]
    assert keys == [f"{i:09d}" for i in range(5)] and sink.total == 5
    assert [len(tar_members(backend.other_client().read(f"u/t-{i:03d}.tar"))) for i in (7, 8, 9)] == [2, 2, 1]


def test_docs_samples_and_shards_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The examples of docs/samples.md's "Samples and shards" section run as written."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "samples.md").read_text()
    section = doc.split("## Samples and shards", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "samples_doc"}
    for block in blocks:
        exec(compile(block, "docs/samples.md", "exec", dont_inherit=True), namespace)
    assert "Image.image: expected NDArray[uint8], got ndarray[float32]" in capsys.readouterr().out


def test_pattern_errors() -> None:
    with pytest.raises(ValueError, match="one shard-number placeholder"):
        ShardWriter("/tmp/a-%03d-%03d.tar")
    with pytest.raises(ValueError, match="no shard-number placeholder"):
        ShardWriter("/tmp/a.tar", maxcount=3)
    with pytest.raises(ValueError, match="maxcount must be >= 1"):
        ShardWriter("/tmp/a-%d.tar", maxcount=0)


def test_single_shard_without_placeholder_and_wds_dicts(tmp_path: Path) -> None:
    target = tmp_path / "one.tar"
    samples = make(3)
    urls = write_samples([s.as_wds for s in samples], str(target))
    assert urls == [str(target)]
    members = tar_members(target.read_bytes())
    assert [d for _, d in members] == [s.packed for s in samples]
    assert (tmp_path / "one.tar.idx").exists()
    assert write_samples([], str(tmp_path / "none-%d.tar")) == [] and not list(tmp_path.glob("none-*"))


# ------------------------------------------------ one ranged GET per sample (moto behind a counting proxy)
@pytest.fixture
def proxy(moto_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_server.endpoint_url)
    yield p
    p.close()


def test_sample_k_costs_one_ranged_get(moto_server: S3Server, proxy: FaultProxy) -> None:
    profile = s3_profile(moto_server, f"manystore-test/onerange-{os.getpid()}", endpoint_url=proxy.url)
    config = {"profiles": {"p": profile}}
    writer_client = StorageClient(StorageClientConfig.from_dict(config, "p"))
    samples = make(40)
    urls = write_samples(samples, "s-%02d.tar", maxcount=20, client=writer_client)
    assert len(urls) == 2
    reader = StorageClient(StorageClientConfig.from_dict(config, "p"))  # no remembered index
    first = decode_sample(Img, read_member(reader, "s-01.tar", "000000021.msgpack"))
    assert first == samples[21]
    for k in (22, 37, 25):
        before = Counter(proxy.requests_by_method)
        got = decode_sample(Img, read_member(reader, "s-01.tar", f"{k:09d}.msgpack"))
        after = Counter(proxy.requests_by_method)
        after.subtract(before)
        assert got == samples[k]
        assert +after == Counter({"GET": 1}), (k, after)


def test_abort_mid_multipart_upload_leaves_nothing(moto_server: S3Server) -> None:
    """A shard big enough for a multipart upload: parts are uploaded, then the source fails."""
    base = f"manystore-test/mpu-{os.getpid()}"
    profile = s3_profile(moto_server, base, multipart_chunksize=5 * 1024 * 1024)
    client = StorageClient(StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p"))
    s3 = moto_server.boto3_client()
    prefix = base.partition("/")[2] + "/"

    def uploads() -> list[str]:
        return [
            u["Key"]
            for u in s3.list_multipart_uploads(Bucket="manystore-test", Prefix=prefix).get("Uploads", [])
        ]

    during: list[list[str]] = []

    def source() -> Iterator[Img]:
        rng = np.random.default_rng(0)
        for i in range(14):
            yield Img(rng.integers(0, 255, (1024, 1024), dtype=np.uint8), i, "big")
        during.append(uploads())
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_samples(source(), "big-%03d.tar", maxcount=100, client=client)
    assert during == [[prefix + "big-000.tar"]]  # the shard was streaming as a multipart upload
    assert uploads() == []
    assert list(client.list("")) == []
