"""manystore.batch's object model on every backend: buckets, objects, groups, readers, writers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from manystore.batch import Bucket, Client, ObjectRange
from manystore.batch.writer import APPEND_DIR, ObjectWriter

from .conftest import Backend

MiB = 1 << 20


def payload(size: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


def bucket_of(
    backend: Backend, sub: str = "b", config: dict[str, Any] | None = None
) -> tuple[Client, Bucket]:
    client = Client(config=config or backend.config)
    return client, client.bucket(f"msc://test/{sub}")


def fill(bucket: Bucket, names: list[str]) -> dict[str, bytes]:
    data = {name: payload(100 + i, i) for i, name in enumerate(names)}
    for name, body in data.items():
        bucket.object(name).get_writer().put_content(body)
    return data


def test_listing_pages_props_and_urls(backend: Backend) -> None:
    client, bucket = bucket_of(backend)
    data = fill(bucket, [f"obj-{i}" for i in range(5)] + ["sub/x"])
    client.bucket("msc://test/other").object("outside").get_writer().put_content(b"no")
    assert bucket.name == "msc://test/b"
    assert [e.name for e in bucket.list_all_objects()] == sorted(data)
    pages, token = [], ""
    while True:
        page = bucket.list_objects(page_size=2, continuation_token=token, props="name,size,version")
        pages.append([e.name for e in page.entries])
        token = page.continuation_token
        if not token:
            break
    assert pages == [["obj-0", "obj-1"], ["obj-2", "obj-3"], ["obj-4", "sub/x"]]
    entry = bucket.list_objects(prefix="obj-3", props="size,version").entries[0]
    assert entry.size == len(data["obj-3"]) and entry.version
    assert entry.object.get_reader().read_all() == data["obj-3"]
    assert list(bucket.list_urls(prefix="sub/")) == ["msc://test/b/sub/x"]
    props = bucket.object("obj-1").head()
    assert props.size == len(data["obj-1"]) and props.obj_version == bucket.client.info("b/obj-1").etag
    assert props.location == "msc://test/b/obj-1"
    with pytest.raises(ValueError, match="unsupported \\['copies'\\]"):
        bucket.list_objects(props="name,copies")
    with pytest.raises(NotImplementedError, match="flag MISSING"):
        bucket.list_objects(flags=["MISSING"])
    with pytest.raises(FileNotFoundError):
        bucket.object("nope").head()


def test_template_range_and_names_groups(backend: Backend) -> None:
    _, bucket = bucket_of(backend)
    fill(bucket, [f"shard-{i:03d}.tar" for i in range(10)] + ["other"])
    group = bucket.objects(obj_template="shard-{000..012..3}.tar")
    assert group.list_names() == [
        "shard-000.tar",
        "shard-003.tar",
        "shard-006.tar",
        "shard-009.tar",
        "shard-012.tar",
    ]
    found = [o.name for o in group.list_all_objects_iter()]
    assert found == ["shard-000.tar", "shard-003.tar", "shard-006.tar", "shard-009.tar"]  # 012 does not exist
    assert [o.props_cached.size for o in group.list_all_objects_iter() if o.props_cached] == [
        100,
        103,
        106,
        109,
    ]
    ranged = bucket.objects(obj_range=ObjectRange.from_string("shard-{000..001}.tar"))
    assert [o.name for o in ranged.list_all_objects_iter(props=None)] == ["shard-000.tar", "shard-001.tar"]
    by_prefix = bucket.objects(obj_range=ObjectRange("shard-00"))
    assert by_prefix.list_names() == [f"shard-00{i}.tar" for i in range(10)]
    assert list(bucket.objects(obj_names=["other"]).list_urls()) == ["msc://test/b/other"]
    with pytest.raises(ValueError, match="expected exactly one"):
        bucket.objects(obj_names=["a"], obj_template="b")
    with pytest.raises(ValueError, match="invalid brace group"):
        bucket.objects(obj_template="shard-{1..x}")


def test_group_copy_continue_on_error_reports_the_missing_object(backend: Backend) -> None:
    client, bucket = bucket_of(backend)
    data = fill(bucket, [f"s-{i}" for i in range(6)])
    dst = client.bucket("msc://test/dst")
    job_ids = bucket.objects(obj_template="s-{0..6}").copy(dst, prepend="c/", continue_on_error=True)
    assert len(job_ids) == 1
    result = client.job(job_ids[0]).wait(timeout=60)
    status = client.job(job_ids[0]).status()
    assert not result.success and "s-6" in (result.error or "")
    assert (status.state, status.objects_done, status.objects_failed) == ("done", 6, 1)
    assert status.bytes == sum(len(v) for v in data.values())
    assert list(status.errors) == ["s-6"]
    assert "NotFound" in status.errors["s-6"]
    assert {e.name: dst.object(e.name).get_reader().read_all() for e in dst.list_all_objects()} == {
        f"c/{k}": v for k, v in data.items()
    }


def test_group_copy_stops_at_first_error_without_continue_on_error(backend: Backend) -> None:
    client, bucket = bucket_of(backend)
    fill(bucket, [f"s-{i}" for i in range(1, 8)])
    dst = client.bucket("msc://test/dst")
    job = bucket.objects(obj_names=["s-0"] + [f"s-{i}" for i in range(1, 8)]).copy(dst, num_workers=-1)[0]
    result = client.job(job).wait(timeout=60)
    status = client.job(job).status()
    assert not result.success and status.state == "failed" and status.aborted
    assert status.objects_failed == 1 and status.objects_done < 7  # stopped: not every object was copied
    assert len(dst.list_all_objects()) == status.objects_done


def test_group_delete_with_dry_run_and_missing_object(backend: Backend) -> None:
    client, bucket = bucket_of(backend)
    fill(bucket, ["a", "b", "c"])
    group = bucket.objects(obj_names=["a", "b", "missing"])
    dry = client.job(group.delete(continue_on_error=True, dry_run=True))
    assert not dry.wait(timeout=30).success
    st = dry.status()
    assert st.dry_run and sorted(st.planned) == ["delete msc://test/b/a", "delete msc://test/b/b"]
    assert list(st.errors) == ["missing"]
    assert [e.name for e in bucket.list_all_objects()] == ["a", "b", "c"]  # dry run changed nothing
    real = client.job(group.delete(continue_on_error=True))
    real.wait(timeout=30)
    st = real.status()
    assert (st.objects_done, st.objects_failed, list(st.errors)) == (2, 1, ["missing"])
    assert [e.name for e in bucket.list_all_objects()] == ["c"]


def test_copy_dry_run_changes_nothing(backend: Backend) -> None:
    client, bucket = bucket_of(backend)
    fill(bucket, ["x.jpg", "y.txt"])
    dst = client.bucket("msc://test/dst")
    job = client.job(bucket.copy(dst, ext={"jpg": "png"}, dry_run=True))
    assert job.wait(timeout=30).success
    assert sorted(job.status().planned) == [
        "copy msc://test/b/x.jpg -> msc://test/dst/x.png",
        "copy msc://test/b/y.txt -> msc://test/dst/y.txt",
    ]
    assert dst.list_all_objects() == []
    assert client.job(bucket.copy(dst, prepend="n-", ext={"jpg": "png"})).wait(timeout=30).success
    assert [e.name for e in dst.list_all_objects()] == ["n-x.png", "n-y.txt"]
    assert dst.object("n-x.png").get_reader().read_all() == bucket.object("x.jpg").get_reader().read_all()


def test_reader_ranges_chunks_workers_and_file(backend: Backend) -> None:
    _, bucket = bucket_of(backend)
    data = payload(MiB + 123, 7)
    obj = bucket.object("big.bin")
    obj.get_writer().put_content(data)
    assert obj.get_reader().read_all() == data
    assert obj.get_reader(byte_range="bytes=10-19").read_all() == data[10:20]
    assert obj.get_reader(byte_range="bytes=1000000-").read_all() == data[1000000:]
    assert obj.get_reader(byte_range="bytes=-500").read_all() == data[-500:]
    chunks = list(obj.get_reader(chunk_size=256 << 10))
    assert [len(c) for c in chunks] == [256 << 10] * 4 + [123] and b"".join(chunks) == data
    parallel = obj.get_reader(chunk_size=64 << 10, num_workers=4)
    assert parallel.read_all() == data and b"".join(parallel) == data
    assert parallel.attributes.size == len(data)
    with obj.get_reader(chunk_size=100_000).as_file() as fh:
        parts = [fh.read(1), fh.read(99_998), fh.read(300_001), fh.read()]
    assert b"".join(parts) == data and fh.closed
    ranged = obj.get_reader(byte_range="bytes=5-100004", chunk_size=4096, num_workers=3).as_file()
    assert ranged.read() == data[5:100005] and ranged.read() == b""
    sink = Path(os.environ.get("TMPDIR", "/tmp")) / f"batch-writer-{os.getpid()}.bin"
    with open(sink, "wb") as out:
        obj.get_reader(writer=out)
    assert sink.read_bytes() == data
    sink.unlink()
    with pytest.raises(ValueError, match="byte_range 'bytes=9-1'"):
        obj.get_reader(byte_range="bytes=9-1")
    with pytest.raises(ValueError, match="max_resume"):
        obj.get_reader().as_file(max_resume=-1)
    with pytest.raises(TypeError, match="expected an ArchiveConfig"):
        obj.get_reader(archive_config=object())
    with pytest.raises(FileNotFoundError):
        bucket.object("missing").get_reader().read_all()


def test_append_is_invisible_until_flush(backend: Backend) -> None:
    _, bucket = bucket_of(backend)
    obj = bucket.object("log.txt")
    writer = obj.get_writer()
    handle = writer.append_content(b"one,")
    handle = writer.append_content(b"two,", handle=handle)
    handle = writer.append_content(b"three", handle=handle)
    with pytest.raises(FileNotFoundError):
        obj.head()  # nothing visible before the flush
    assert bucket.list_all_objects() == []  # the staged parts are hidden from listings
    assert writer.append_content(b"", handle=handle, flush=True) == ""
    assert obj.get_reader().read_all() == b"one,two,three"
    # appending to an existing object keeps its content, and it stays unchanged until the flush
    h2 = writer.append_content(b"+four")
    assert obj.get_reader().read_all() == b"one,two,three"
    writer.append_content(b"+five", handle=h2, flush=True)
    assert obj.get_reader().read_all() == b"one,two,three+four+five"
    assert [e.name for e in bucket.list_all_objects()] == ["log.txt"]
    assert not [m.key for m in backend.client.list(APPEND_DIR)]  # staging cleaned up
    with pytest.raises(FileNotFoundError, match="staged part 0 of 1 is missing"):
        writer.append_content(b"", handle=h2.split(".")[0] + ".1", flush=True)  # already published
    with pytest.raises(ValueError, match="append handle 'bogus'"):
        writer.append_content(b"x", handle="bogus")


def test_append_flush_retried_after_a_crash_does_not_duplicate(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, bucket = bucket_of(backend)
    obj = bucket.object("obj")
    obj.get_writer().put_content(b"base|")
    writer = obj.get_writer()
    handle = writer.append_content(b"part1|")
    handle = writer.append_content(b"part2", handle=handle)
    original = ObjectWriter._discard

    def crash(self: ObjectWriter, staging: str) -> None:
        raise KeyboardInterrupt("killed after publishing, before cleanup")

    monkeypatch.setattr(ObjectWriter, "_discard", crash)
    with pytest.raises(KeyboardInterrupt):
        writer.append_content(b"", handle=handle, flush=True)
    monkeypatch.setattr(ObjectWriter, "_discard", original)
    assert obj.get_reader().read_all() == b"base|part1|part2"
    writer.append_content(b"", handle=handle, flush=True)  # the retry only cleans up
    assert obj.get_reader().read_all() == b"base|part1|part2"
    assert not [m.key for m in backend.client.list(APPEND_DIR)]


def test_file_writer_modes(backend: Backend) -> None:
    _, bucket = bucket_of(backend)
    obj = bucket.object("f.txt")
    obj.get_writer().put_content(b"old")
    with obj.get_writer().as_file("a") as fh:
        fh.write(b"-a1")
        fh.write(b"-a2")
        assert obj.get_reader().read_all() == b"old"  # not yet flushed
        fh.flush()
        assert obj.get_reader().read_all() == b"old-a1-a2"
        fh.write(b"-a3")
    assert obj.get_reader().read_all() == b"old-a1-a2-a3"
    with obj.get_writer().as_file("w") as fh:
        assert obj.get_reader().read_all() == b""  # "w" truncates at once, as the SDK
        fh.write(b"new")
    assert obj.get_reader().read_all() == b"new"
    with pytest.raises(ValueError, match="expected 'w' or 'a'"):
        obj.get_writer().as_file("r")


def test_put_file_put_files_and_custom_props(backend: Backend, tmp_path: Path) -> None:
    _, bucket = bucket_of(backend)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for rel, body in {"a.txt": b"A", "b.bin": b"B", "d/c.txt": b"C"}.items():
        (src / rel).write_bytes(body)
    assert bucket.put_files(str(src), pattern="*.txt", dry_run=True) == ["a.txt"]
    assert bucket.list_all_objects() == []
    assert bucket.put_files(str(src), pattern="*.txt", recursive=True, prepend="up/") == [
        "up/a.txt",
        "up/d/c.txt",
    ]
    assert bucket.put_files(str(src), recursive=True, basename=True, prefix_filter="d/") == ["c.txt"]
    assert {e.name for e in bucket.list_all_objects()} == {"up/a.txt", "up/d/c.txt", "c.txt"}
    assert bucket.object("up/d/c.txt").get_reader().read_all() == b"C"
    with pytest.raises(ValueError, match="is not a directory"):
        bucket.put_files(str(src / "a.txt"))
    obj = bucket.object("pf")
    obj.get_writer().put_file(str(src / "b.bin"))
    assert obj.get_reader().read_all() == b"B"
    if backend.name == "file":
        with pytest.raises(NotImplementedError, match="POSIX profiles keep no user metadata"):
            obj.get_writer().set_custom_props({"k": "v"})
        return
    obj.get_writer().set_custom_props({"k": "v"})
    obj.get_writer().set_custom_props({"j": "w"})
    assert obj.head().custom_metadata == {"k": "v", "j": "w"}
    obj.get_writer().set_custom_props({"only": "1"}, replace_existing=True)
    assert obj.head().custom_metadata == {"only": "1"}
    assert obj.get_reader().read_all() == b"B"


def test_prefetch_and_evict_use_the_read_cache(backend: Backend, tmp_path: Path) -> None:
    config = {**backend.config, "cache": {"size": "64M", "location": str(tmp_path / "cache")}}
    client, bucket = bucket_of(backend, config=config)
    data = fill(bucket, ["p0", "p1", "p2"])
    group = bucket.objects(obj_names=["p0", "p1", "p2", "gone"])
    if backend.name == "file":
        with pytest.raises(ValueError, match="has no read cache"):
            group.prefetch()
        return
    job = client.job(group.prefetch(continue_on_error=True))
    job.wait(timeout=30)
    st = job.status()
    assert (st.objects_done, st.objects_failed, list(st.errors)) == (3, 1, ["gone"])
    assert st.bytes == sum(len(v) for v in data.values())
    assert os.path.isfile(os.path.join(str(tmp_path / "cache"), "batch-jobs", f"{st.uuid}.json"))
    cache = bucket.client._io.cache()
    assert cache is not None

    def cached(name: str) -> bytes | None:
        meta = bucket.client.info(bucket._key(name))
        assert meta.etag is not None
        return cache.read_slice(bucket._key(name), meta.etag, 0, meta.content_length)

    assert [cached(n) for n in ("p0", "p1", "p2")] == [data["p0"], data["p1"], data["p2"]]
    assert client.job(bucket.objects(obj_names=["p0", "p2", "gone"]).evict()).wait(timeout=30).success
    assert [cached(n) for n in ("p0", "p1", "p2")] == [None, data["p1"], None]
    bucket.evict()
    assert cached("p1") is None


def test_object_copy_bucket_admin_and_client_surface(backend: Backend) -> None:
    client, bucket = bucket_of(backend)
    fill(bucket, ["k"])
    other = client.bucket("msc://test/c2")
    bucket.object("k").copy(other.object("renamed"))
    assert other.object("renamed").get_reader().read_all() == bucket.object("k").get_reader().read_all()
    assert bucket.head()["present"] == "true" and bucket.head()["provider"] == bucket.provider
    with pytest.raises(FileExistsError):
        bucket.create()
    assert client.bucket("msc://test/empty").create() is not None
    with pytest.raises(PermissionError, match="refusing to delete the root"):
        client.bucket("msc://test").delete()
    other.delete()
    assert other.list_all_objects() == []
    with pytest.raises(FileNotFoundError):
        other.delete()
    other.delete(missing_ok=True)
    obj = client.get_object_from_url("msc://test/b/k")
    assert obj.name == "b/k" and obj.get_reader().read_all() == bucket.object("k").get_reader().read_all()
    with pytest.raises(ValueError, match="bucket is required"):
        client.batch(["k"])
    with pytest.raises(FileNotFoundError):
        bucket.list_archive("x.tar")
    with pytest.raises(TypeError, match="max_pool_size"):
        Client(max_pool_size=4)
