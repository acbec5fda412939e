"""S13 rows of ``manystore.batch`` (issue 13): ETL over a bucket on threads, processes and Ray.

``S13-etl``: ``Bucket.transform`` of N x 256 KiB objects (N = 2,000; 200 with ``--quick``)
with an identity transform, S3 -> S3 on the one ``rclone serve s3``, objects/s from the
call to the job's end (its state file polled every 10 ms). Threads: 16 in this process.
Processes: 2 spawned workers x 8 threads (the pool's start is inside the timing). Ray: a
local instance with 2 CPUs, started before the timing (its start is a one-off, seconds),
batches of 32 objects per task, 8 threads each. Every run writes a fresh target prefix,
dropped afterwards outside the timing.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.libs import Endpoint, _msc_style_config
from bench.report import Report

SIZE = 256 * 1024
SOURCE = "s13-etl-src/"
MODES: dict[str, dict[str, Any]] = {
    "threads": {"num_workers": 16},
    "processes": {"num_worker_processes": 2, "num_workers": 8},
    "ray": {"execution": "ray", "num_workers": 8},
}
THREADS = {"threads": 16, "processes": 16, "ray": 16}
REPO = Path(__file__).resolve().parent.parent


def identity(data: bytes) -> bytes:
    """The ETL under test: the bytes unchanged (module level: worker processes import it)."""
    return data


def _wait(client: Any, job_id: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = client.job(job_id).status()
        if status.finished:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"ETL job {job_id} still running after {timeout}s")
        time.sleep(0.01)


def s13_etl(report: Report, ep: Endpoint, work: Path, quick: bool, runs: int) -> None:
    """Run S13-etl and add its rows to ``report``."""
    from manystore.batch import Client

    n = 200 if quick else 2000
    scen = "S13-etl"
    report.describe(
        scen,
        f"ETL of {n:,} x 256 KiB objects, identity transform, S3 -> S3: `Bucket.transform` on "
        "16 threads / 2 worker processes x 8 threads / Ray (local, 2 CPUs, started before "
        "timing) tasks of 32 objects x 8 threads; from the call to the job's end",
        "objects/s",
    )
    print("  S13-etl", flush=True)
    config = _msc_style_config(ep)
    config["cache"] = {"location": str(work / "s13-cache"), "size": "64M"}
    client = Client(config=config)
    client.etl("bench-identity").init(identity)
    src = client.bucket(f"msc://b/{SOURCE}")
    payload = os.urandom(SIZE)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: src.object(f"o-{i:05d}.bin").get_writer().put_content(payload), range(n)))
    ray_started = False
    bucket_dir = work / "s3data" / ep.bucket
    for mode, options in MODES.items():
        rates: list[float] = []
        try:
            if mode == "ray" and not ray_started:
                import ray

                os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                ray_started = True
            for run in range(runs):
                prefix = f"s13-etl/{mode}-r{run}/"
                start = time.perf_counter()
                job_id = src.transform("bench-identity", client.bucket(f"msc://b/{prefix}"), **options)
                status = _wait(client, job_id)
                elapsed = time.perf_counter() - start
                if status.objects_done != n or status.objects_failed:
                    raise RuntimeError(
                        f"{mode}: {status.objects_done} done, {status.objects_failed} failed of {n}: {status.err}"
                    )
                rates.append(n / elapsed)
                time.sleep(0.5)  # let the job's executor shut down before the next run
                shutil.rmtree(bucket_dir / prefix, ignore_errors=True)
            report.value(scen, mode, THREADS[mode], "manystore", statistics.median(rates))
        except Exception as exc:
            report.error(scen, mode, THREADS[mode], "manystore", exc)
    if ray_started:
        import ray

        ray.shutdown()
