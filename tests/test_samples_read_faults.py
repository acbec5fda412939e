"""manystore.samples reading when things go wrong: a stream cut mid-shard (fault proxy), corrupt
shards, webdataset's own shards, typed samples, and the shuffle's quality."""

from __future__ import annotations

import io
import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest

from manystore.samples import Dataset, NDArray, SampleDecodeError, ShardCorruptError, packable

from .conftest import Backend, s3_profile
from .faultproxy import FaultProxy
from .samples_shards import Pt, npy, shard_bytes, uneven_shards
from .servers import S3Server


@packable
class Img:
    image: NDArray
    label: int


@pytest.fixture
def configured(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    config = tmp_path / "msc.json"
    config.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    return backend


@pytest.fixture
def proxied(rclone_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """Profile ``p`` on rclone through a fault proxy."""
    proxy = FaultProxy(rclone_server.endpoint_url)
    profile = s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")
    profile["storage_provider"]["options"]["endpoint_url"] = proxy.url
    (tmp_path / "msc.json").write_text(json.dumps({"profiles": {"p": profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(tmp_path / "msc.json"))
    try:
        yield proxy
    finally:
        proxy.close()


def test_stream_cut_mid_shard_is_resumed(proxied: FaultProxy) -> None:
    import manystore

    for i, body in enumerate(uneven_shards([60, 60, 60], shape=(3, 32, 32))):
        manystore.write(f"msc://p/ds/s-{i}.tar", body)
    loader = Dataset[Pt]("msc://p/ds/s-{0..2}.tar").ordered()
    assert len(loader) == 180  # counts (header walks) done before the faults
    proxied.reset_next(1, keep=0.4)
    proxied.truncate_next(1, keep=0.6)
    got = [int(s.label) for s in loader]
    assert proxied.injected["reset"] == 1 and proxied.injected["truncate"] == 1
    assert got == list(range(180))  # every sample once, in order: no short epoch, no repeat
    proxied.reset_next(100, keep=0.3)  # a stream that keeps breaking fails loudly
    with pytest.raises(ConnectionError, match=r"s-0\.tar"):
        list(Dataset[Pt]("msc://p/ds/s-{0..2}.tar").ordered())
    proxied.clear()


def _corrupt_header(body: bytes, member_index: int) -> bytes:
    """``body`` with the checksum of the ``member_index``-th header (pax tars: 2 headers each) broken."""
    offsets, offset = [], 0
    while offset < len(body) and body[offset : offset + 512] != b"\0" * 512:
        offsets.append(offset)
        size = int(body[offset + 124 : offset + 136].replace(b"\0", b" ").strip() or b"0", 8)
        offset += 512 + -(-size // 512) * 512
    names = [o for o in offsets if body[o + 156 : o + 157] != b"x"]
    target = names[member_index]
    return body[:target] + b"X" + body[target + 1 :]


def test_corrupt_shards_raise_with_url_and_member_or_are_skipped(configured: Backend) -> None:
    good = uneven_shards([4, 4, 4])
    configured.client.write("c/s-0.tar", good[0])
    configured.client.write("c/s-1.tar", _corrupt_header(good[1], 2))  # 3rd member's header
    configured.client.write("c/s-2.tar", good[2])
    url = "msc://test/c/s-{0..2}.tar"
    with pytest.raises(ShardCorruptError) as info:
        list(Dataset[Pt](url))
    assert info.value.url == "msc://test/c/s-1.tar" and info.value.member == "sample000005.msgpack"
    assert "msc://test/c/s-1.tar" in str(info.value) and isinstance(info.value, ValueError)
    loader = Dataset[Pt](url).ordered(skip_corrupt=True)
    with pytest.warns(RuntimeWarning, match=r"skipping corrupt shard msc://test/c/s-1\.tar"):
        got = [int(s.label) for s in loader]
    assert got == [0, 1, 2, 3, 8, 9, 10, 11]
    assert [u for u, _ in loader.corrupt_shards] == ["msc://test/c/s-1.tar"]

    # a shard cut short (the object itself): named, never a short epoch
    configured.client.write("c/s-1.tar", good[1][: 3 * 1024 + 600])  # inside the 4th member
    with pytest.raises(ShardCorruptError, match="truncated") as info:
        list(Dataset[Pt](url))
    assert info.value.url == "msc://test/c/s-1.tar"

    # a corrupt payload (bad msgpack) in a typed dataset: the member and shard are named
    bad = io.BytesIO()
    import tarfile

    with tarfile.open(fileobj=bad, mode="w") as tf:
        for name, data in (
            ("a.msgpack", msgpack.packb({"image": npy(np.zeros(2)), "label": 1})),
            ("b.msgpack", b"\xc1\xc1"),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tf.addfile(member, io.BytesIO(data))
    configured.client.write("c/bad.tar", bad.getvalue())
    with pytest.raises(SampleDecodeError) as decode:
        list(Dataset[Img]("msc://test/c/bad.tar"))
    assert decode.value.member == "b.msgpack" and decode.value.url == "msc://test/c/bad.tar"
    with pytest.warns(RuntimeWarning, match="bad.tar"):
        assert [s.label for s in Dataset[Img]("msc://test/c/bad.tar").ordered(skip_corrupt=True)] == [1]


def test_typed_samples_and_pickled_arrays_refused(configured: Backend) -> None:
    configured.client.write("t/s.tar", shard_bytes(range(5), shape=(2, 3)))
    samples = list(Dataset[Img]("msc://test/t/s.tar"))
    assert [type(s) for s in samples] == [Img] * 5
    assert [s.label for s in samples] == list(range(5))
    assert samples[3].image.shape == (2, 3) and int(samples[3].image[1, 2]) == 3
    out = io.BytesIO()
    np.save(out, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    body = msgpack.packb({"image": out.getvalue(), "label": 7})
    import tarfile

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        member = tarfile.TarInfo("p.msgpack")
        member.size = len(body)
        tf.addfile(member, io.BytesIO(body))
    configured.client.write("t/pickled.tar", tar.getvalue())
    with pytest.raises(SampleDecodeError, match="pickle") as info:
        list(Dataset[Img]("msc://test/t/pickled.tar"))
    assert info.value.member == "p.msgpack"
    trusted = list(Dataset[Img]("msc://test/t/pickled.tar", allow_pickle=True))
    assert trusted[0].image[0] == {"x": 1}


def test_reads_shards_written_by_webdataset(configured: Backend, tmp_path: Path) -> None:
    import webdataset

    label = 0
    for shard in range(2):
        path = tmp_path / f"w-{shard}.tar"
        with webdataset.TarWriter(str(path)) as sink:
            for _ in range(7):
                image = np.full((3, 8, 8), label, np.uint8)
                packed = msgpack.packb({"image": npy(image), "label": label})
                sink.write({"__key__": f"k{label:04d}", "msgpack": packed, "cls": str(label).encode()})
                label += 1
        configured.client.write(f"w/w-{shard}.tar", path.read_bytes())
    ds = Dataset[Img]("msc://test/w/w-{0..1}.tar")
    assert len(ds) == 14
    samples = list(ds.shuffled(seed=5, buffer_samples=4))
    assert sorted(s.label for s in samples) == list(range(14))
    assert all(int(s.image[0, 0, 0]) == s.label for s in samples)


def test_shuffle_spreads_each_shard_across_the_epoch(configured: Backend) -> None:
    """20 shards x 30 samples: the shuffled order's same-shard adjacent-pair rate is near a random
    permutation's (1/20) and each shard's samples span a wide part of the epoch."""
    n_shards, per = 20, 30
    for i, body in enumerate(uneven_shards([per] * n_shards)):
        configured.client.write(f"q/s-{i:02d}.tar", body)
    ds = Dataset[Pt]("msc://test/q/s-{00..19}.tar")

    def stats(labels: list[int]) -> tuple[float, float]:
        shard = [label // per for label in labels]
        same = sum(a == b for a, b in itertools.pairwise(shard)) / (len(shard) - 1)
        spans = []
        for s in range(n_shards):
            where = [i for i, x in enumerate(shard) if x == s]
            spans.append((max(where) - min(where)) / len(labels))
        return same, float(np.median(spans))

    ordered_same, ordered_span = stats([int(s.label) for s in ds.ordered()])
    shuffled_same, shuffled_span = stats(
        [int(s.label) for s in ds.shuffled(buffer_shards=5, buffer_samples=150, seed=1)]
    )
    baseline = (per - 1) / (n_shards * per - 1)
    assert ordered_same > 0.9 and ordered_span < 0.06
    assert shuffled_same < 3 * baseline  # interleaved, not runs of one shard
    assert shuffled_span > 0.3  # a shard's samples reach far beyond its own 1/20 of the epoch


def test_docs_reading_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/samples.md's "Reading" examples run as written (after the section they build on)."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "samples.md").read_text()
    namespace: dict[str, object] = {"__name__": "samples_doc"}
    ran = 0
    for heading in ("## Samples and shards", "## Reading"):
        section = doc.split(heading, 1)[1].split("\n## ", 1)[0]
        for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
            exec(compile(block, "docs/samples.md", "exec", dont_inherit=True), namespace)
            ran += heading == "## Reading"
    assert ran == 3


def test_untyped_dataset_yields_dict_samples(configured: Backend) -> None:
    from manystore.samples import DictSample

    configured.client.write("d/s.tar", shard_bytes(range(3)))
    got = list(Dataset("msc://test/d/s.tar"))
    assert [type(s) for s in got] == [DictSample] * 3 and [s["label"] for s in got] == [0, 1, 2]
    with pytest.raises(TypeError, match="expected a URL"):
        Dataset(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unclosed"):
        Dataset[Pt]("msc://test/d/s-{0..2.tar")
