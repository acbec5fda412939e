"""S12: PyTorch checkpoints (DCP and ``torch.save``/``torch.load``), manystore vs its peers.

A state dict of float32 tensors shaped like a model plus one optimizer buffer per parameter
(``{"model": ..., "optim": {"momentum": ...}}``: halves of equal size; tensors of 4 to 64 MiB
plus small 4 KiB ones; 512 MiB in all, 64 MiB in quick mode) is saved with
``torch.distributed.checkpoint.save`` and loaded back whole (``full``) and model-only
(``half``: the plan needs only the ``model`` half's bytes, which torch's writer interleaves
with the optimizer's in its files). The model half alone (256 MiB, quick 32 MiB) is also
stored with ``torch.save`` and read with ``torch.load``. Every cell is a fresh process
(``python -m bench.torch_ckpt JSON``, the peers in their own venvs as S11); the data is
generated from a fixed seed before the clock starts, and every load is checked against
blake2b digests of what was saved (a fast, wrong load fails its cell).

Libraries, each at its documented best settings:

- ``manystore``: ``manystore.torch.dcp.StorageWriter(url, thread_count=8)`` /
  ``StorageReader(url)`` (its default reader constructor ``dcp_optimized()``), and
  ``manystore.torch.save``/``load``; ``msc://b/...`` URLs whose profile (``MSC_CONFIG``)
  carries the endpoint — the endpoint-free configuration the docs recommend.
- ``s3torchconnector`` 1.5: ``S3StorageWriter(region, url, thread_count=8)`` (its README's
  value) and ``S3StorageReader(region, url, reader_constructor=S3ReaderConstructor.dcp_optimized())``
  over an ``S3Client(region, endpoint=...)`` with ``S3ClientConfig(force_path_style=True)``
  (default part size and throughput target), and ``S3Checkpoint`` writer/reader around
  ``torch.save``/``torch.load``. Its writer cannot write to ``rclone serve s3`` (see the
  results file): its loads then read a copy of manystore's checkpoint (the same torch layout),
  PUT through the server after each round's saves. Before each round's loads every file is
  HEADed once, untimed (see ``_settle``: rclone computes a fresh object's ETag on first read).
- ``msc`` 1.3.1 (``.tools/msc-torch-venv``): ``MultiStorageFileSystemWriter(url, thread_count=8)``
  / ``MultiStorageFileSystemReader(url, thread_count=MSC_READ_THREADS)`` and
  ``msc.torch.save``/``load`` on the same profile.

Figures per cell (median of ``runs``): MB/s (bytes of the tensors saved or loaded ÷ seconds),
the RSS the operation added (peak of the process tree during it minus the RSS right before
it), and from one extra run through ``tests/faultproxy.py`` the GET/PUT/POST requests and the
bytes moved (response bodies of GETs) ÷ the bytes the load needs (its plan's items plus the
``.metadata`` object; for ``torch.load`` the object's size).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._children import run_json_child

if TYPE_CHECKING:
    from bench.libs import Endpoint
    from bench.report import Report

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
KiB = 1 << 10
PREFIX = "s12"
SEED = 1234
#: Files per rank / writer threads: s3torchconnector's README value, given to every writer.
WRITE_THREADS = 8
#: MSC's reader prefetch threads. 1 is its best here: with more, its reader first downloads each
#: file whole on that many threads, then reads it again (no cache configured), moving twice the
#: bytes (quick run: 34 MB/s at 8 vs 54 MB/s at 1 for the full load).
MSC_READ_THREADS = 1
#: Model tensor sizes in MiB at full size (the optimizer half mirrors them): 256 MiB.
MODEL_MIB = (64, 32, 32, 16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 4)
SMALL = 16  # 4 KiB tensors (biases, norms) in the model half, mirrored in the optimizer's
LIBS: dict[str, str | None] = {
    "manystore": None,
    "s3torchconnector": None,
    "msc": ".tools/msc-torch-venv/bin/python",
}
OPS = ("save", "load_full", "load_half", "tsave", "tload")
LABELS = {
    "save": "DCP save",
    "load_full": "DCP load full",
    "load_half": "DCP load half (model keys)",
    "tsave": "torch.save",
    "tload": "torch.load",
}


def state_mib(quick: bool) -> int:
    """Size of the whole DCP state dict in MiB."""
    return 64 if quick else 512


# ---------------------------------------------------------------------------- child side
def _shapes(quick: bool) -> dict[str, tuple[int, ...]]:
    """Model tensor names -> shapes (float32 rows of 4 KiB)."""
    scale = 8 if quick else 1
    shapes: dict[str, tuple[int, ...]] = {}
    for i, mib in enumerate(MODEL_MIB):
        shapes[f"layers.{i}.weight"] = (mib * 256 // scale, 1024)
    for i in range(SMALL):
        shapes[f"layers.{i}.bias"] = (1024,)
    return shapes


def _make_state(quick: bool, fill: str, half: bool = False) -> dict[str, Any]:
    """The state dict: random from the seed (``fill="random"``) or a zeroed template."""
    import torch

    gen = torch.Generator().manual_seed(SEED)

    def tensor(shape: tuple[int, ...]) -> Any:
        if fill == "random":
            return torch.randn(shape, generator=gen)
        return torch.empty(shape).fill_(0.0)  # pages touched now, not during the load

    model = {k: tensor(s) for k, s in _shapes(quick).items()}
    if half:
        return {"model": model}
    return {"model": model, "optim": {"momentum": {k: tensor(s) for k, s in _shapes(quick).items()}}}


def _flat(state: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _digests(state: dict[str, Any]) -> dict[str, str]:
    """blake2b of each tensor's bytes, by flattened key."""
    out = {}
    for key, t in _flat(state).items():
        t = t.contiguous()
        raw = (ctypes.c_char * (t.numel() * t.element_size())).from_address(t.data_ptr())
        out[key] = hashlib.blake2b(raw, digest_size=16).hexdigest()
    return out


def _nbytes(state: dict[str, Any]) -> int:
    return sum(t.numel() * t.element_size() for t in _flat(state).values())


def _rss_kib() -> int:
    from bench.torch_loader import _status_kib

    return _status_kib(os.getpid(), "VmRSS:")


def _reset_peak() -> None:
    try:  # reset VmHWM to the current RSS, so the sampler's peak is this operation's
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _dcp_writer(spec: dict) -> Any:
    lib, url = spec["lib"], spec["url"]
    if lib == "manystore":
        from manystore.torch.dcp import StorageWriter

        return StorageWriter(url, thread_count=WRITE_THREADS)
    if lib == "s3torchconnector":
        from s3torchconnector.dcp import S3FileSystem, S3StorageWriter

        ep, cfg, client = _s3tc(spec)
        writer = S3StorageWriter(ep["region"], url, s3client_config=cfg, thread_count=WRITE_THREADS)
        writer.fs = S3FileSystem(ep["region"], s3_client=client, s3client_config=cfg)
        return writer
    from multistorageclient.contrib.torch import MultiStorageFileSystemWriter

    return MultiStorageFileSystemWriter(url, thread_count=WRITE_THREADS)


def _dcp_reader(spec: dict) -> Any:
    lib, url = spec["lib"], spec["url"]
    if lib == "manystore":
        from manystore.torch.dcp import StorageReader

        return StorageReader(url)
    if lib == "s3torchconnector":
        from s3torchconnector import S3ReaderConstructor
        from s3torchconnector.dcp import S3FileSystem, S3StorageReader

        ep, cfg, client = _s3tc(spec)
        constructor = S3ReaderConstructor.dcp_optimized()
        reader = S3StorageReader(ep["region"], url, s3client_config=cfg, reader_constructor=constructor)
        reader.fs = S3FileSystem(
            ep["region"], s3_client=client, s3client_config=cfg, reader_constructor=constructor
        )
        return reader
    from multistorageclient.contrib.torch import MultiStorageFileSystemReader

    return MultiStorageFileSystemReader(url, thread_count=spec.get("msc_threads", MSC_READ_THREADS))


def _s3tc(spec: dict) -> tuple[dict, Any, Any]:
    """s3torchconnector's endpoint, ``S3ClientConfig`` and ``S3Client`` for the bench server."""
    from s3torchconnector import S3ClientConfig
    from s3torchconnector._s3client import S3Client

    ep = spec["endpoint"]
    cfg = S3ClientConfig(force_path_style=True)
    return ep, cfg, S3Client(ep["region"], endpoint=ep["url"], s3client_config=cfg)


def _tsave(spec: dict, obj: Any) -> None:
    import torch

    lib, url = spec["lib"], spec["url"]
    if lib == "manystore":
        import manystore.torch

        manystore.torch.save(obj, url)
    elif lib == "s3torchconnector":
        from s3torchconnector import S3Checkpoint

        ep, cfg, _ = _s3tc(spec)
        with S3Checkpoint(ep["region"], endpoint=ep["url"], s3client_config=cfg).writer(url) as f:
            torch.save(obj, f)
    else:
        import multistorageclient as msc

        msc.torch.save(obj, url)


def _tload(spec: dict) -> Any:
    import torch

    lib, url = spec["lib"], spec["url"]
    if lib == "manystore":
        import manystore.torch

        return manystore.torch.load(url)
    if lib == "s3torchconnector":
        from s3torchconnector import S3Checkpoint

        ep, cfg, _ = _s3tc(spec)
        with S3Checkpoint(ep["region"], endpoint=ep["url"], s3client_config=cfg).reader(url) as f:
            return torch.load(f)
    import multistorageclient as msc

    return msc.torch.load(url)


def _preimport(lib: str) -> None:
    if lib == "manystore":
        import manystore.torch
        import manystore.torch.dcp  # noqa: F401
    elif lib == "s3torchconnector":
        import s3torchconnector.dcp  # noqa: F401
    else:
        import multistorageclient.contrib.torch  # noqa: F401


def measure(spec: dict) -> dict:
    """Run one operation of one library; its figures as a JSON-able dict."""
    import torch.distributed.checkpoint as dcp

    from bench.torch_loader import RssSampler

    op, quick = spec["op"], spec["quick"]
    half = op in ("load_half", "tsave", "tload")
    state: Any = None  # torch.load builds its own
    if op != "tload":
        state = _make_state(quick, "random" if op in ("save", "tsave") else "zero", half=half)
    result: dict[str, Any] = {"nbytes": _nbytes(state) if state is not None else 0}
    if op in ("save", "tsave"):
        result["digests"] = _digests(state)
    _preimport(spec["lib"])  # the library's modules load before the clock starts, as torch's do
    _reset_peak()
    rss0 = _rss_kib()
    with RssSampler(0.02) as rss:
        start = time.perf_counter()
        if op == "save":
            dcp.save(state, storage_writer=_dcp_writer(spec))
        elif op == "tsave":
            _tsave(spec, state)
        elif op == "tload":
            state = _tload(spec)
        else:
            reader = _dcp_reader(spec)
            dcp.load(state, storage_reader=reader)
        result["seconds"] = time.perf_counter() - start
    result["rss_mib"] = max(0, rss.peak_kib - rss0) / KiB
    if op.startswith("load"):
        wanted = ("model.",) if op == "load_half" else ("model.", "optim.")
        result["needed"] = sum(
            info.length for idx, info in reader.storage_data.items() if idx.fqn.startswith(wanted)
        )
    if op not in ("save", "tsave"):
        result["digests"] = _digests(state)
        result["nbytes"] = _nbytes(state)
    return result


def child_main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    try:
        if os.environ.get("S12_PROFILE"):  # a developer's aid: cProfile the cell into this file
            import cProfile

            prof = cProfile.Profile()
            result = prof.runcall(measure, spec)
            prof.dump_stats(os.environ["S12_PROFILE"])
        else:
            result = measure(spec)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- parent side
def _run_child(spec: dict, work: Path) -> dict:
    from bench.torch_loader import _msc_config

    config = work / f"s12-msc-{abs(hash(spec['endpoint']['url']))}.json"
    _msc_config(spec["endpoint"], config)
    return run_json_child("bench.torch_ckpt", spec, LIBS[spec["lib"]], {"MSC_CONFIG": str(config)})


def _url(lib: str, bucket: str, what: str) -> str:
    """``what`` under the scenario's prefix: ``s3://`` for s3torchconnector, else the ``msc://b`` profile."""
    key = f"{PREFIX}/{what}"
    return f"s3://{bucket}/{key}" if lib == "s3torchconnector" else f"msc://b/{key}"


def _requests(log: list[tuple[str, str]]) -> dict[str, int]:
    counts = {"GET": 0, "PUT": 0, "POST": 0, "other": 0}
    for method, _target in log:
        counts[method if method in counts else "other"] += 1
    return counts


def s12(report: Report, ep: Endpoint, work: Path, quick: bool, runs: int) -> None:
    """Checkpoint rows: every (library, operation) cell, ``runs`` timed runs each, interleaved.

    Run 0 goes through the fault proxy and only counts requests and bytes. A library whose
    save fails has its loads read manystore's checkpoint of the same run.
    """
    from dataclasses import asdict

    from tests.faultproxy import FaultProxy

    from bench.torch_loader import _load

    total, half = state_mib(quick), state_mib(quick) // 2
    title = (
        f"PyTorch checkpoints: DCP save / load of a {total} MiB float32 state dict (model + one optimizer "
        f"buffer per parameter, tensors of 4-64 MiB and 4 KiB; `{WRITE_THREADS}` writer threads = files), "
        f"loaded whole and model-only (half: {half} MiB), and torch.save / torch.load of the {half} MiB model "
        "half. MB/s = tensor bytes saved or loaded ÷ seconds; RSS = peak RSS the operation added; requests "
        "and bytes moved (GET bodies ÷ bytes the load needs incl. .metadata) from one extra run through "
        "tests/faultproxy.py; each load is checked against digests of what was saved"
    )
    report.describe("S12", title, "MB/s")
    bucket_dir = work / "s3data" / ep.bucket
    proxy = FaultProxy(ep.url)
    results: dict[tuple[str, str], list[dict]] = {(lib, op): [] for lib in LIBS for op in OPS}
    counted: dict[tuple[str, str], dict | str] = {}
    failed: dict[tuple[str, str], str] = {}
    expected: dict[tuple[str, str], dict[str, str]] = {}
    loads = [_load()]
    libs = list(LIBS)
    try:
        for run in range(runs + 1):
            for op in OPS:
                if op in ("load_full", "tload"):  # the round's files are all written: prepare them
                    kind = "dcp" if op == "load_full" else "obj.pt"
                    saver = "save" if kind == "dcp" else "tsave"
                    for lib in libs:
                        if (lib, saver) in failed and (lib, op) not in failed:
                            _copy_via_server(ep, bucket_dir / PREFIX, "manystore", lib, kind)
                    _settle(ep, bucket_dir / PREFIX, kind)
                shift = run % len(libs)
                for lib in libs[shift:] + libs[:shift]:
                    if (lib, op) in failed:
                        continue
                    kind = "dcp" if op in ("save", "load_full", "load_half") else "obj.pt"
                    saver = "save" if kind == "dcp" else "tsave"
                    source = lib if op in ("save", "tsave") or (lib, saver) not in failed else "manystore"
                    endpoint = asdict(ep)
                    if run == 0:
                        endpoint["url"] = proxy.url
                        before = len(proxy.requests_log)
                        got_before = proxy.body_bytes_by_method["GET"]
                    spec = {"lib": lib, "op": op, "quick": quick, "endpoint": endpoint}
                    spec["url"] = _url(lib, ep.bucket, f"{lib}/{kind}")
                    print(f"  S12 run {run} {lib} {op} ({spec['url']})", flush=True)
                    result = _run_child(spec, work)
                    if "error" not in result:
                        result = _check(result, op, expected.get((source, kind)), (lib, kind), expected)
                    if "error" in result:
                        failed[(lib, op)] = result["error"]
                        continue
                    if run == 0:
                        counts: dict[str, Any] = _requests(proxy.requests_log[before:])
                        counts["got"] = proxy.body_bytes_by_method["GET"] - got_before
                        counts["needed"] = _needed(result, op, bucket_dir / PREFIX / lib / kind)
                        counted[(lib, op)] = counts
                    else:
                        results[(lib, op)].append(result)
            loads.append(_load())
    finally:
        proxy.close()
    for lib in LIBS:
        for op in OPS:
            _record(report, lib, op, results[(lib, op)], counted.get((lib, op)), failed.get((lib, op)))
    report.describe("S12", title + f". Load average (1/5/15 min) per round: {'; '.join(loads)}", "MB/s")


def _s3(ep: Endpoint) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=ep.url,
        region_name=ep.region,
        aws_access_key_id=ep.access_key,
        aws_secret_access_key=ep.secret_key,
    )


def _settle(ep: Endpoint, top: Path, kind: str) -> None:
    """HEAD every file of every library's checkpoint (or object) once, untimed.

    ``rclone serve s3`` computes an object's MD5 ETag on its first HEAD/GET after a write, and
    every concurrent first request computes it again (8 parallel ranged GETs of a fresh 64 MiB
    file: 0.7 s, then 0.06 s). S3 knows the ETag at write time; without this, a load right
    after a save would be charged by how many requests it sends at once.
    """
    s3 = _s3(ep)
    for path in sorted(top.rglob("*")):
        rel = path.relative_to(top).parts
        if path.is_file() and len(rel) > 1 and (rel[1] == kind):
            s3.head_object(Bucket=ep.bucket, Key=f"{PREFIX}/{path.relative_to(top).as_posix()}")


def _copy_via_server(ep: Endpoint, top: Path, source: str, lib: str, kind: str) -> None:
    """PUT ``source``'s checkpoint files (or object) again under ``lib``'s prefix, through the server.

    A library whose save failed loads its own copy of another's checkpoint, so no two libraries
    share files (and rclone's caches of them). Written through S3, not into rclone's backing
    directory: its directory cache would hide files added behind its back.
    """
    s3 = _s3(ep)
    src = top / source / kind
    files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
    for path in files:
        rel = path.relative_to(top / source).as_posix()
        s3.put_object(Bucket=ep.bucket, Key=f"{PREFIX}/{lib}/{rel}", Body=path.read_bytes())


def _check(
    result: dict,
    op: str,
    want: dict[str, str] | None,
    mine: tuple[str, str],
    expected: dict[tuple[str, str], dict[str, str]],
) -> dict:
    """Record a save's digests; compare a load's with those of the checkpoint it read."""
    if op in ("save", "tsave"):
        expected[mine] = result["digests"]
        return result
    got = result["digests"]
    if want is None:
        return {"error": "nothing saved to load from"}
    wrong = [k for k, v in got.items() if want.get(k) != v]
    if wrong or not got:
        return {"error": f"loaded tensors differ from the saved ones: {', '.join(sorted(wrong)[:3])}"}
    return result


def _needed(result: dict, op: str, path: Path) -> int:
    """Bytes a load needs: its plan's items plus ``.metadata``; for torch.load the object."""
    if op == "tload":
        return path.stat().st_size
    if op.startswith("load"):
        return int(result["needed"]) + (path / ".metadata").stat().st_size
    return 0


def _record(
    report: Report, lib: str, op: str, runs: list[dict], counts: dict | str | None, error: str | None
) -> None:
    label = LABELS[op]
    threads = WRITE_THREADS if op in ("save", "load_full", "load_half") else 1
    if error or not runs:
        reason = error or "no run"
        for row in (label, f"{label} RSS"):
            report.error("S12", row, threads, lib, reason)
    else:
        med = statistics.median
        report.value("S12", label, threads, lib, med(r["nbytes"] / 1e6 / r["seconds"] for r in runs))
        report.value("S12", f"{label} RSS", threads, lib, med(r["rss_mib"] for r in runs))
    row = f"{label} requests GET/PUT/POST"
    report.unit("S12", row, threads, "count")
    if isinstance(counts, dict):
        text = f"{counts['GET']:,}/{counts['PUT']:,}/{counts['POST']:,}"
        report.value("S12", row, threads, lib, text + (f" +{counts['other']:,}" if counts["other"] else ""))
        if counts["needed"]:
            moved = f"{label} bytes moved ÷ needed"
            report.unit("S12", moved, threads, "ratio ↓")
            report.value("S12", moved, threads, lib, f"{counts['got'] / counts['needed']:.3f}")
    elif error or counts is None:
        report.error("S12", row, threads, lib, error or "not run")


if __name__ == "__main__":
    child_main(sys.argv[1:])
    os._exit(0)  # no teardown: a peer's native threads must not hang the exit
