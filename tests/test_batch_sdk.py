"""The AIStore-SDK object model wired to archives and Get-Batch, on every backend.

An SDK user's script — ``Client().bucket(url)`` → ``objects(obj_template=...).archive(...)``
→ ``bucket.list_archive(...)`` → ``object(...).get_reader(archive_config=...)`` →
``client.batch([...]).get()`` — must give the bytes Python's ``tarfile``/``zipfile`` read
from the same archive.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.batch import ArchiveConfig, ArchiveMode, Bucket, Client, ListObjectFlag, ObjectRange

from .conftest import Backend


def payload(size: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


def setup(backend: Backend, n: int = 6) -> tuple[Client, Bucket, dict[str, bytes]]:
    client = Client(config=backend.config)
    bucket = client.bucket("msc://test/data")
    data = {f"{i:03d}.{ext}": payload(300 + 977 * i, i) for i in range(n) for ext in ("jpg", "cls")}
    for name, body in data.items():
        bucket.object(name).get_writer().put_content(body)
    return client, bucket, data


def wait_ok(client: Client, job_ids: list[str]) -> None:
    assert len(job_ids) == 1
    result = client.job(job_ids[0]).wait(timeout=60)
    assert result, client.job(job_ids[0]).status()


def stdlib_members(raw: bytes, fmt: str) -> dict[str, bytes]:
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for info in tar.getmembers():
            extracted = tar.extractfile(info)
            assert extracted is not None
            out[info.name] = extracted.read()
    return out


@pytest.mark.parametrize("suffix", [".tar", ".tgz", ".zip"])
def test_sdk_script_archive_list_read_batch(backend: Backend, suffix: str) -> None:
    client, bucket, data = setup(backend)
    shard = f"shards/train-000{suffix}"
    wait_ok(client, bucket.objects(obj_template="{000..005}.{jpg,cls}").archive(shard))
    raw = bucket.object(shard).get_reader().read_all()
    truth = stdlib_members(raw, "zip" if suffix == ".zip" else "tar")
    assert truth == data and list(truth) == [f"{i:03d}.{e}" for i in range(6) for e in ("jpg", "cls")]

    listed = bucket.list_archive(shard)
    assert [(e.name, e.size) for e in listed] == [(f"{shard}/{n}", len(b)) for n, b in truth.items()]
    with_obj = bucket.list_archive(shard, include_archive_obj=True, props="name,size")
    assert with_obj[0].name == shard and with_obj[0].size == len(raw) and with_obj[1:] == listed

    obj = bucket.object(shard)
    member = obj.get_reader(archive_config=ArchiveConfig(archpath="004.jpg"), chunk_size=1000)
    assert member.read_all() == truth["004.jpg"]
    assert b"".join(member) == truth["004.jpg"] and max(len(c) for c in member) == 1000
    with member.as_file() as fh:
        assert fh.read(10) + fh.read() == truth["004.jpg"]
    assert member.raw().read() == truth["004.jpg"]
    assert member.attributes.size == len(raw)
    ranged = obj.get_reader(archive_config=ArchiveConfig(archpath="004.jpg"), byte_range="bytes=5-99")
    assert ranged.read_all() == truth["004.jpg"][5:100] and ranged.as_file().read() == truth["004.jpg"][5:100]

    matches = obj.get_reader(archive_config=ArchiveConfig(regex="002", mode=ArchiveMode.WDSKEY)).read_all()
    assert stdlib_members(matches, "tar") == {"002.jpg": truth["002.jpg"], "002.cls": truth["002.cls"]}
    suffixed = obj.get_reader(archive_config=ArchiveConfig(regex=".cls", mode="suffix"), chunk_size=777)
    assert stdlib_members(b"".join(suffixed), "tar") == {n: b for n, b in truth.items() if n.endswith(".cls")}
    with pytest.raises(FileNotFoundError, match="no member 'nope'"):
        obj.get_reader(archive_config=ArchiveConfig(archpath="nope")).read_all()

    url = obj.get_url(archpath="003.cls")
    assert url == obj.uname + "?archpath=003.cls"
    batch = client.batch([bucket.object("001.jpg"), "005.cls"], bucket=bucket)
    batch.add(shard, archpath="000.jpg").add("missing.bin")
    batch.add(f"shards/train-000{suffix}?archpath=003.cls", opaque=b"id-7")
    batch.add("005.jpg", start=10, length=20)
    results = list(batch.get())
    assert [(i.obj_name, i.archpath, i.err_msg is None) for i, _ in results] == [
        ("001.jpg", "", True),
        ("005.cls", "", True),
        (shard, "000.jpg", True),
        ("missing.bin", "", False),
        (shard, "003.cls", True),
        ("005.jpg", "", True),
    ]
    assert [d for _, d in results] == [
        data["001.jpg"], data["005.cls"], truth["000.jpg"], b"", truth["003.cls"], data["005.jpg"][10:30]
    ]  # fmt: skip
    assert results[0][0].bucket == bucket.name and results[4][0].opaque == b"id-7"
    assert len(batch) == 0  # cleared by get()


def test_batch_raw_stream_names_and_errors(backend: Backend) -> None:
    client, bucket, data = setup(backend, n=3)
    names = ["000.jpg", "nope.bin", "002.cls"]
    stream = client.batch(names, bucket=bucket).get(raw=True)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        got = [(m.name, tar.extractfile(m).read() if m.size else b"") for m in tar]  # type: ignore[union-attr]
    assert got == [
        ("test/data/000.jpg", data["000.jpg"]),  # <bucket URL without scheme>/<name>
        ("__404__/test/data/nope.bin", b""),
        ("test/data/002.cls", data["002.cls"]),
    ]
    stream = client.batch(names, bucket=bucket, output_format=".zip", only_obj_name=True).get(raw=True)
    with zipfile.ZipFile(io.BytesIO(stream.read())) as zf:
        assert zf.namelist() == ["000.jpg", "__404__/nope.bin", "002.cls"]
        assert zf.read("002.cls") == data["002.cls"]
    strict = client.batch(names, bucket=bucket, cont_on_err=False, streaming_get=False)
    with pytest.raises(FileNotFoundError):
        next(iter(strict.get()))
    with pytest.raises(ValueError, match="bucket is required"):
        client.batch(["000.jpg"])
    with pytest.raises(ValueError, match="no objects added"):
        client.batch(bucket=bucket).get()
    with pytest.raises(ValueError, match="start=5 needs length"):
        client.batch(bucket=bucket).add("000.jpg", start=5)
    with pytest.raises(NotImplementedError, match="colocation"):
        client.batch(bucket=bucket, colocation=1)
    again = client.batch(["000.jpg"], bucket=bucket)
    assert len(list(again.get(clear_batch=False))) == 1 and len(list(again.get())) == 1


def test_group_archive_errors_append_and_other_bucket(backend: Backend) -> None:
    client, bucket, data = setup(backend, n=2)
    group = bucket.objects(obj_names=["000.jpg", "missing.jpg", "001.cls"])
    strict = group.archive("strict.tar")
    client.job(strict[0]).wait(timeout=60)
    status = client.job(strict[0]).status()
    assert status.state == "failed" and "missing.jpg" in status.errors
    assert not bucket.client.is_file(bucket._key("strict.tar"))  # nothing stored

    lenient = group.archive("out.tar", continue_on_err=True)
    client.job(lenient[0]).wait(timeout=60)
    status = client.job(lenient[0]).status()
    assert status.objects_done == 2 and status.objects_failed == 1 and list(status.errors) == ["missing.jpg"]
    raw = bucket.object("out.tar").get_reader().read_all()
    assert stdlib_members(raw, "tar") == {"000.jpg": data["000.jpg"], "001.cls": data["001.cls"]}

    wait_ok(client, bucket.objects(obj_names=["001.jpg"]).archive("out.tar", allow_append=True))
    raw = bucket.object("out.tar").get_reader().read_all()
    assert list(stdlib_members(raw, "tar")) == ["000.jpg", "001.cls", "001.jpg"]

    other = client.bucket("msc://test/archives")
    job = bucket.objects(obj_names=["000.cls"]).archive("x.zip", to_bck=other, include_source_name=True)
    wait_ok(client, job)
    assert [e.name for e in other.list_archive("x.zip")] == ["x.zip/test/data/000.cls"]
    wait_ok(client, bucket.objects(obj_names=["000.cls"]).archive("x.bin", to_bck=other, mime="tgz"))
    assert stdlib_members(other.object("x.bin").get_reader().read_all(), "tar") == {
        "000.cls": data["000.cls"]
    }
    with pytest.raises(ValueError, match="archive format"):
        group.archive("y.tar", mime="rar")


def test_listing_hides_sidecars_and_expands_archives(backend: Backend) -> None:
    client, bucket, _ = setup(backend, n=2)
    wait_ok(client, bucket.objects(obj_template="000.{jpg,cls}").archive("a.tar"))
    assert bucket.client.is_file(bucket._key("a.tar.idx"))  # the sidecar exists in the store...
    names = [e.name for e in bucket.list_all_objects()]
    assert names == ["000.cls", "000.jpg", "001.cls", "001.jpg", "a.tar"]  # ...but a listing hides it
    assert [o.name for o in bucket.list_all_objects_iter()] == names
    assert bucket.objects(obj_range=ObjectRange(prefix="a")).list_names() == ["a.tar"]
    expanded = [e.name for e in bucket.list_all_objects(flags=[ListObjectFlag.ARCH_DIR])]
    assert expanded == [*names, "a.tar/000.jpg", "a.tar/000.cls"]
    pages, token = [], ""
    while True:
        page = bucket.list_objects(page_size=2, continuation_token=token, flags=[ListObjectFlag.ARCH_DIR])
        pages.extend(e.name for e in page.entries)
        token = page.continuation_token
        if not token:
            break
    assert pages == expanded
    bucket.object("a.tar").delete()
    assert "a.tar.idx" in [e.name for e in bucket.list_all_objects()]  # an orphan sidecar shows
    with pytest.raises(NotImplementedError, match="CACHED"):
        bucket.list_objects(flags=[ListObjectFlag.CACHED])
    with pytest.raises(ValueError, match="expected a ListObjectFlag"):
        bucket.list_objects(flags=["BOGUS"])
    with pytest.raises(ValueError, match="cannot tell the archive format"):
        bucket.list_archive("000.jpg")


def test_demo_step_archives_reads_a_member_and_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from manystore import demo
    from manystore.batch import demo as batch_demo

    demo_dir = tmp_path / "demo"
    config = demo.demo_config(str(demo_dir))
    config_path = tmp_path / "msc_config.json"
    config_path.write_text(json.dumps(config))
    source = StorageClient(StorageClientConfig.from_dict(config, "source"))
    for i in range(20):
        source.write(f"train/shard-{i:05d}.bin", os.urandom(100 + i))
    archives = tmp_path / "archives"
    assert batch_demo.main([str(config_path), "msc://source/train/", str(archives)]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok") == 3, out
    with tarfile.open(archives / "train-000.tar") as tar:
        names = tar.getnames()
    assert names == [f"shard-{i:05d}.bin" for i in range(16)]
    assert batch_demo.main(["too", "few"]) == 2
