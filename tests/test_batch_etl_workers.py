"""manystore.batch ETL that survives its process: SIGKILL mid-way and rerun; and transforms on Ray.

The kill test runs a transform in a child process, kills it (SIGKILL) once some outputs
exist, reruns it here and checks every output exists exactly once with the right bytes,
the outputs finished before the kill were not rewritten, and nothing partial is left.
Ray runs locally with two CPUs (Ray is in the ``test`` extra), shut down at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from manystore.batch import Bucket, Client
from manystore.batch.etl_job import current_record
from manystore.providers.posix_file import TEMP_SUFFIX

from . import etl_transforms as tx
from .conftest import Backend

ROOT = Path(__file__).resolve().parent.parent
FILES = {f"k/{i:03d}.txt": f"object {i} ".encode() * (i + 1) for i in range(40)}


def make_client(backend: Backend, tmp_path: Path) -> tuple[Client, dict]:
    config = {**backend.config, "cache": {"location": str(tmp_path / "cache"), "size": "16M"}}
    return Client(config=config), config


def fill(bucket: Bucket) -> None:
    for name, data in FILES.items():
        bucket.object(name).get_writer().put_content(data)


def outputs(bucket: Bucket) -> dict[str, bytes]:
    return {e.name: bucket.object(e.name).get_reader().read_all() for e in bucket.list_all_objects()}


CHILD = """
import json, os
from manystore.batch import Client
from tests import etl_transforms as tx
client = Client(config=json.loads(os.environ["CFG"]))
client.etl("slow-upper").init(tx.slow_upper)
job = client.bucket("msc://test/src").transform("slow-upper", client.bucket("msc://test/dst"), num_workers=2)
print(job, flush=True)
client.job(job).wait(timeout=120)
"""


@pytest.mark.parametrize("backend", ["file", "s3-rclone", "s3-moto"], indirect=True)
def test_killed_transform_reruns_to_every_output_exactly_once(backend: Backend, tmp_path: Path) -> None:
    client, config = make_client(backend, tmp_path)
    src, dst = client.bucket("msc://test/src"), client.bucket("msc://test/dst")
    fill(src)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CFG": json.dumps(config), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
    )
    try:
        assert child.stdout is not None
        job_id = child.stdout.readline().strip()
        deadline = time.monotonic() + 60
        while len(dst.list_all_objects()) < 6:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the child wrote nothing"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert client.job(job_id).status().state == "abandoned"
    done_before = {
        e.name: e.version
        for e in dst.list_all_objects(props="name,version")
        if current_record(dst.client, dst._key(e.name))
    }
    assert 6 <= len(done_before) < len(FILES)
    client.etl("slow-upper").init(tx.slow_upper)
    rerun = src.transform("slow-upper", dst, num_workers=4)
    assert client.job(rerun).wait(timeout=120).success
    status = client.job(rerun).status()
    assert status.objects_done == len(FILES)
    assert outputs(dst) == {n: d.upper() for n, d in FILES.items()}
    after = {e.name: e.version for e in dst.list_all_objects(props="name,version")}
    assert {n: after[n] for n in done_before} == done_before  # finished outputs were not rewritten
    assert status.bytes == sum(len(FILES[n]) for n in FILES if n not in done_before)
    if backend.name == "file":
        root = Path(backend.config["profiles"]["test"]["storage_provider"]["options"]["base_path"])
        leftovers = [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]
        assert leftovers == []


ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'manystore[ray]')")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{ROOT / 'src'}:{ROOT}"  # Ray workers import the test transforms
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved


def test_transform_on_ray(ray_cluster: None, backend: Backend, tmp_path: Path) -> None:
    client, _ = make_client(backend, tmp_path)
    src, dst = client.bucket("msc://test/src"), client.bucket("msc://test/dst")
    fill(src)
    client.etl("upper-etl").init(tx.upper)
    client.etl("reverse-etl").init_class()(tx.Reverse)
    job_id = src.transform("upper-etl", dst, execution="ray", ext={"txt": "up"}, etl_pipeline=["reverse-etl"])
    assert client.job(job_id).wait(timeout=120).success
    assert outputs(dst) == {n[: -len("txt")] + "up": d.upper()[::-1] for n, d in FILES.items()}
    again = src.transform("upper-etl", dst, execution="ray", ext={"txt": "up"}, etl_pipeline=["reverse-etl"])
    assert client.job(again).wait(timeout=120).success
    assert client.job(again).status().bytes == 0
