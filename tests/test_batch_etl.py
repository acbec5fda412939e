"""manystore.batch ETL: registered transforms over buckets and groups, inline reads, reruns, workers.

Every test runs on every backend (``backend`` fixture). Transforms live in
``tests/etl_transforms.py`` so worker processes can import them.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

from manystore.batch import Bucket, Client, Etl, ETLConfig, ETLServer
from manystore.batch.etl_job import current_record

from . import etl_transforms as tx
from .conftest import Backend

FILES = {
    "a/x.jpg": b"jpeg one",
    "a/y.txt": b"text two",
    "a/bad.txt": b"bad three",
    "b/z.jpg": b"other four",
}


def make_client(backend: Backend, tmp_path: Path) -> Client:
    return Client(config={**backend.config, "cache": {"location": str(tmp_path / "cache"), "size": "16M"}})


def fill(bucket: Bucket, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        bucket.object(name).get_writer().put_content(data)


def contents(bucket: Bucket) -> dict[str, bytes]:
    return {e.name: bucket.object(e.name).get_reader().read_all() for e in bucket.list_all_objects()}


def etags(bucket: Bucket) -> dict[str, str]:
    return {e.name: e.version for e in bucket.list_all_objects(props="name,version")}


def test_bucket_transform_renames_filters_and_reruns_skip(backend: Backend, tmp_path: Path) -> None:
    client = make_client(backend, tmp_path)
    src, dst = client.bucket("msc://test/src"), client.bucket("msc://test/dst")
    fill(src, FILES)
    client.etl("upper-etl").init(tx.upper)
    job_id = src.transform("upper-etl", dst, prefix_filter="a/", prepend="t-", ext={"jpg": "png"})
    assert client.job(job_id).wait(timeout=60).success
    expected = {"t-a/x.png": b"JPEG ONE", "t-a/y.txt": b"TEXT TWO", "t-a/bad.txt": b"BAD THREE"}
    assert contents(dst) == expected
    status = client.job(job_id).status()
    assert (status.kind, status.objects_done, status.objects_failed, status.bytes) == ("etl-bucket", 3, 0, 25)
    assert all(current_record(dst.client, dst._key(n)) for n in expected)
    before = etags(dst)
    again = src.transform("upper-etl", dst, prefix_filter="a/", prepend="t-", ext={"jpg": "png"})
    assert client.job(again).wait(timeout=60).success
    assert client.job(again).status().bytes == 0  # every output was current: nothing rewritten
    assert etags(dst) == before
    # a changed source is redone, the others still skipped
    src.object("a/y.txt").get_writer().put_content(b"new text")
    third = src.transform("upper-etl", dst, prefix_filter="a/", prepend="t-", ext={"jpg": "png"})
    assert client.job(third).wait(timeout=60).success
    assert client.job(third).status().bytes == len(b"NEW TEXT")
    assert (client.job(third).status().objects_done, client.job(third).status().objects_skipped) == (3, 2)
    assert contents(dst)["t-a/y.txt"] == b"NEW TEXT"
    # force redoes everything
    forced = src.transform("upper-etl", dst, prefix_filter="a/", prepend="t-", ext={"jpg": "png"}, force=True)
    assert client.job(forced).wait(timeout=60).success
    assert client.job(forced).status().bytes == 25 and client.job(forced).status().objects_skipped == 0


def test_dry_run_changes_nothing_and_plans_skips(backend: Backend, tmp_path: Path) -> None:
    client = make_client(backend, tmp_path)
    src, dst = client.bucket("msc://test/src"), client.bucket("msc://test/dst")
    fill(src, FILES)
    client.etl("upper-etl").init(tx.upper)
    job_id = src.transform("upper-etl", dst, ext={"jpg": "png"}, dry_run=True)
    assert client.job(job_id).wait(timeout=60).success
    status = client.job(job_id).status()
    assert status.dry_run and status.objects_done == 4
    assert sorted(p.split(" ")[0] for p in status.planned) == ["transform"] * 4
    assert any(p.endswith("b/z.png (etl upper-etl)") for p in status.planned), status.planned
    assert contents(dst) == {}
    group = src.objects(obj_names=["a/x.jpg", "a/y.txt"])
    assert client.job(group.transform(dst, "upper-etl")).wait(timeout=60).success
    planned = client.job(src.transform("upper-etl", dst, dry_run=True)).wait(timeout=60)
    assert planned.success
    plans = sorted(client.job(planned.job_id).status().planned)
    assert [p.split(" ")[0] for p in plans] == ["skip", "skip", "transform", "transform"], plans


def test_continue_on_error_records_the_failing_object(backend: Backend, tmp_path: Path) -> None:
    client = make_client(backend, tmp_path)
    src, dst = client.bucket("msc://test/src"), client.bucket("msc://test/dst")
    fill(src, FILES)
    client.etl("reverse-etl").init_class()(tx.Reverse)
    job_id = src.transform("reverse-etl", dst, cont_on_err=True)
    result = client.job(job_id).wait(timeout=60)
    assert not result.success
    status = client.job(job_id).status()
    assert (status.state, status.objects_done, status.objects_failed) == ("done", 3, 1)
    assert list(status.errors) == ["a/bad.txt"] and "refusing" in status.errors["a/bad.txt"]
    assert contents(dst) == {n: d[::-1] for n, d in FILES.items() if n != "a/bad.txt"}
    stopped = src.transform("reverse-etl", client.bucket("msc://test/dst2"), num_workers=-1)
    assert client.job(stopped).status().kind == "etl-bucket"
    assert not client.job(stopped).wait(timeout=60).success
    assert client.job(stopped).status().state == "failed"


def test_group_transform_streams_and_reports_a_missing_object(backend: Backend, tmp_path: Path) -> None:
    client = make_client(backend, tmp_path)
    src, dst = client.bucket("msc://test/src"), client.bucket("msc://test/dst")
    fill(src, {f"s-{i}.txt": b"abcdefg" * i for i in range(1, 4)})
    client.etl("upper-stream").init(tx.upper_stream, streaming=True)
    client.etl("prefix-stream").init_class()(tx.StreamPrefix)
    group = src.objects(obj_template="s-{1..4}.txt")
    job_id = group.transform(
        dst, "upper-stream", ext={"txt": "dat"}, continue_on_error=True, etl_pipeline=["prefix-stream"]
    )
    assert not client.job(job_id).wait(timeout=60).success
    status = client.job(job_id).status()
    assert (status.kind, status.objects_done, status.objects_failed) == ("etl-objects", 3, 1)
    assert list(status.errors) == ["s-4.txt"]
    assert contents(dst) == {f"s-{i}.dat": b">" + b"ABCDEFG" * i for i in range(1, 4)}


def test_inline_reads_urls_and_copy(backend: Backend, tmp_path: Path) -> None:
    client = make_client(backend, tmp_path)
    src = client.bucket("msc://test/src")
    fill(src, {"doc.txt": b"hello world" * 3})
    client.etl("tag-args").init(tx.tag_args)
    client.etl("upper-etl").init(tx.upper)
    obj = src.object("doc.txt")
    config = ETLConfig("tag-args", {"k": "v"})
    want = b"hello world" * 3 + b'|{"k":"v"}'
    assert obj.get_reader(etl=config).read_all() == want
    assert list(obj.get_reader(etl=config, chunk_size=10)) == [
        want[i : i + 10] for i in range(0, len(want), 10)
    ]
    with obj.get_reader(etl=config).as_file(max_resume=2) as fh:
        assert fh.read(5) + fh.read() == want
    sink = io.BytesIO()
    obj.get_reader(etl=ETLConfig(client.etl("upper-etl") >> client.etl("tag-args")), writer=sink)
    assert sink.getvalue() == b"HELLO WORLD" * 3 + b"|"
    assert obj.get_reader(etl=ETLConfig("upper-etl")).attributes.size == 33  # the source's
    with pytest.raises(ValueError, match="byte_range"):
        obj.get_reader(etl=config, byte_range="bytes=0-3")
    with pytest.raises(LookupError, match="not-registered"):
        obj.get_reader(etl=ETLConfig("not-registered"))
    # URLs carry the ETL; the client reads them back through it
    url = obj.get_url(etl=config)
    assert url.startswith(obj.uname + "?etl_name=tag-args")
    assert list(src.list_urls(etl=config)) == [url]
    assert list(src.objects(obj_names=["doc.txt"]).list_urls(etl=config)) == [url]
    assert client.get_object_from_url(url).get_reader().read_all() == want
    # Object.copy(etl=) writes the transformed object with its record
    target = client.bucket("msc://test/dst").object("doc.out")
    obj.copy(target, etl=ETLConfig("upper-etl"))
    assert target.get_reader().read_all() == b"HELLO WORLD" * 3
    assert current_record(target.bucket.client, target.key)


def test_registry_lifecycle_and_errors(tmp_path: Path) -> None:
    client = Client(config={"profiles": {}, "cache": {"location": str(tmp_path / "cache"), "size": "1M"}})
    etl = client.etl("upper-etl")
    assert isinstance(etl, Etl)
    assert etl.init(tx.upper) == "upper-etl"
    details = etl.view()
    assert (details.stage, details.kind, details.transform, details.importable) == (
        "Running",
        "function",
        "tests.etl_transforms:upper",
        True,
    )
    assert "upper-etl" in [i.id for i in client.list_etls()]
    etl.stop()
    assert "upper-etl" in [i.id for i in client.list_etls(["Stopped"])]
    assert "upper-etl" not in [i.id for i in client.list_etls()]
    bucket = client.bucket(str(tmp_path / "data"))
    bucket.object("o").get_writer().put_content(b"x")
    with pytest.raises(RuntimeError, match="stopped"):
        bucket.object("o").get_reader(etl=ETLConfig("upper-etl"))
    etl.start()
    assert bucket.object("o").get_reader(etl=ETLConfig("upper-etl")).read_all() == b"X"
    etl.delete()
    with pytest.raises(LookupError, match="upper-etl"):
        etl.view()
    for bad in ("abc", "Upper_ETL", "-leading-dash", "x" * 33):
        with pytest.raises(ValueError, match="ETL name"):
            client.etl(bad)
    with pytest.raises(TypeError, match="Python function"):
        client.etl("image-etl").init("aistorage/runtime_python:3.11")  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="dependencies"):
        client.etl("deps-etl").init_class(dependencies=["torch"])
    with pytest.raises(TypeError, match="transform"):
        client.etl("empty-etl").init_class()(type("Empty", (ETLServer,), {}))
    with pytest.raises(ValueError, match="comm_type"):
        client.etl("comm-etl").init(tx.upper, comm_type="carrier-pigeon")


def test_registration_is_found_by_name_in_another_client(tmp_path: Path) -> None:
    import subprocess
    import sys

    cache = str(tmp_path / "cache")
    Client(config={"profiles": {}, "cache": {"location": cache, "size": "1M"}}).etl("upper-etl").init(
        tx.upper
    )
    data = tmp_path / "d"
    data.mkdir()
    (data / "o").write_bytes(b"shout")
    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys; from manystore.batch import Client, ETLConfig;"
        f"c = Client(config={{'profiles': {{}}, 'cache': {{'location': {cache!r}, 'size': '1M'}}}});"
        f"sys.stdout.write(c.bucket({str(data)!r}).object('o').get_reader(etl=ETLConfig('upper-etl')).read_all().decode())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={"PYTHONPATH": f"{root / 'src'}:{root}", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "SHOUT"


def test_processes_transform_and_refuse_a_lambda(backend: Backend, tmp_path: Path) -> None:
    client = make_client(backend, tmp_path)
    src, dst = client.bucket("msc://test/src"), client.bucket("msc://test/dst")
    files = {f"p/{i:02d}.bin": bytes([i]) * (i + 1) * 100 for i in range(12)}
    files["p/bad.txt"] = b"nope"
    fill(src, files)
    client.etl("reverse-etl").init_class()(tx.Reverse)
    job_id = src.transform("reverse-etl", dst, num_worker_processes=2, num_workers=2, cont_on_err=True)
    client.job(job_id).wait(timeout=120)
    status = client.job(job_id).status()
    assert (status.objects_done, status.objects_failed, list(status.errors)) == (12, 1, ["p/bad.txt"])
    assert contents(dst) == {n: d[::-1] for n, d in files.items() if n != "p/bad.txt"}
    client.etl("lambda-etl").init(lambda data: data)
    with pytest.raises(TypeError, match=r"lambda-etl.*worker processes"):
        src.transform("lambda-etl", dst, num_worker_processes=2)
    # threads take a lambda
    assert client.job(src.transform("lambda-etl", client.bucket("msc://test/l"), prefix_filter="p/0")).wait(
        timeout=60
    )


def test_registration_pickles_by_reference() -> None:
    from manystore.batch.etl import lookup

    Client().etl("upper-etl").init(tx.upper)
    reg = lookup("upper-etl")
    assert pickle.loads(pickle.dumps(reg)).target is tx.upper
    assert b"tests.etl_transforms" in pickle.dumps(reg)


def test_docs_etl_example_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "batch.md").read_text()
    example = text.split("## ETL\n")[1].split("```python\n")[1].split("```")[0]
    out = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PYTHONPATH": str(root / "src"),
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "True",
        "['img-0.txt.gz', 'img-1.txt.gz', 'img-2.txt.gz', 'img-3.txt.gz']",
        "b'PIXELS 2'",
        "True 0",
        "b'NOT AN IMAGE!'",
    ]
