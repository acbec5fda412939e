"""manystore.batch jobs: ids valid across processes, waits, timeouts, and jobs whose process died."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from manystore.batch import Client, Job
from manystore.batch.jobs import start_job

SRC = str(Path(__file__).resolve().parent.parent / "src")


def config_for(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return {
        "profiles": {"t": {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}}},
        "cache": {"location": str(tmp_path / "cache"), "size": "16M"},
    }


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC, **env},
    )


def test_job_status_is_visible_from_another_process(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    client = Client(config=config)
    bucket = client.bucket("msc://t/src")
    for i in range(20):
        bucket.object(f"o{i:02d}").get_writer().put_content(b"x" * i)
    job_id = bucket.objects(obj_template="o{00..20}").copy(
        client.bucket("msc://t/dst"), continue_on_error=True
    )[0]
    assert not client.job(job_id).wait(timeout=30).success  # o20 is missing
    code = (
        "import json, os; from manystore.batch import Client;"
        "st = Client(config=json.loads(os.environ['CFG'])).job(os.environ['JOB']).status();"
        "print(json.dumps([st.state, st.kind, st.objects_done, st.objects_failed, st.bytes, list(st.errors)]))"
    )
    out = run_python(code, CFG=json.dumps(config), JOB=job_id)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["done", "copy-objects", 20, 1, sum(range(20)), ["o20"]]


def test_job_of_a_dead_process_shows_abandoned(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    code = (
        "import os, sys, time; from manystore.batch.jobs import start_job;"
        "jid = start_job('slow', range(400), lambda i: time.sleep(0.02) or 1, num_workers=1,"
        " cache_location=os.environ['CACHE']);"
        "print(jid, flush=True); time.sleep(0.8); os._exit(3)"
    )
    out = run_python(code, CACHE=cache)
    assert out.returncode == 3, out.stderr
    job = Job(out.stdout.strip(), cache_location=cache)
    status = job.status()
    assert status.state == "abandoned" and status.aborted
    assert 0 < status.objects_done < 400 and status.total == 400
    assert f"process {status.pid}" in status.err
    started = time.monotonic()
    result = job.wait(timeout=30)
    assert not result.success and "abandoned" in (result.error or "")
    assert time.monotonic() - started < 5  # an abandoned job is not waited on


def test_wait_times_out_then_finishes(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    job_id = start_job(
        "slow", range(30), lambda i: time.sleep(0.02) or 2, num_workers=1, cache_location=cache
    )
    job = Client(config={"profiles": {}, "cache": {"location": cache}}).job(job_id)
    with pytest.raises(TimeoutError, match=f"job '{job_id}'"):
        job.wait(timeout=0.05, verbose=False)
    assert job.status().state == "running"
    assert job.wait_for_idle(timeout=30).success
    status = job.status()
    assert (status.state, status.objects_done, status.bytes, status.end_time > 0) == ("done", 30, 60, True)
    assert job.job_kind == "slow"


def test_job_lookup_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="'0123abcd': no such job"):
        Job("0123abcd", cache_location=str(tmp_path)).status()
    with pytest.raises(ValueError, match="no job_id"):
        Job(cache_location=str(tmp_path)).status()
    job_id = start_job("k", [], lambda i: 0, cache_location=str(tmp_path))
    assert Job(job_id, cache_location=str(tmp_path)).wait(timeout=10).success
    with pytest.raises(ValueError, match="of kind 'k', not 'other'"):
        Job(job_id, "other", cache_location=str(tmp_path)).status()
    with pytest.raises(ValueError, match="num_workers=0"):
        start_job("k", [1], lambda i: 0, num_workers=0, cache_location=str(tmp_path))


def test_docs_example_runs(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "batch.md").read_text()
    example = text.split("```python\n")[2].split("```")[0]
    out = run_python(example, HOME=str(tmp_path), TMPDIR=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "b'one,two'" and "False 10 2" in out.stdout
