"""A self-contained tour of manystore: ``python -m manystore.demo`` (what ``make demo`` runs).

No network and no account are needed: the demo builds two profiles over local
directories from an embedded configuration, then

1. writes a small dataset (binary shards under ``train/``, JSON-lines shards under ``val/``),
2. lists it, 3. globs it, 4. mirrors it to the second profile with ``sync_from``,
5. reads every object back from both profiles and compares SHA-256 digests,
6. does a ranged read,
7. with PyTorch installed (``manystore[torch]``), reads ``train/`` in one DataLoader epoch
   and saves and loads a DCP checkpoint (``manystore.torch.demo``, run as a child process;
   skipped with a note otherwise),
8. archives 16 objects into a tar shard as an AIStore-SDK-style object group, reads one
   member back through the shard's index and fetches the 16 objects as one Get-Batch
   (``manystore.batch.demo``, a child process),
9. with numpy and msgpack installed, writes 2,000 typed samples into WebDataset shards, reads
   them back in a shuffled DataLoader epoch, reads one sample by index and records the
   dataset in a SQLite index (``manystore.samples.demo``),
10. with numpy installed, stores arrays as objects through the cottoncandy-style interface
   (raw and gzip, a nested dict of arrays) and reads them back (``manystore.arrays.demo``),

and prints what each step did and how long it took. It exits with status 1 if the
copies differ. Its two data directories are recreated on each run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .client import StorageClient
from .config import StorageClientConfig
from .types import Range
from .utils import human_size

__all__ = ["demo_config", "main"]

DEFAULT_DIR = "demo-output"
PROFILES = ("source", "replica", "layers")  # layers: what the samples and arrays steps write


def _cli_command() -> str:
    """How to run the CLI of this installation: its ``manystore`` script next to this Python
    (relative to the working directory when below it), else ``python -m manystore``."""
    script = os.path.join(os.path.dirname(sys.executable), "manystore")
    if not os.path.isfile(script):
        return f"{sys.executable} -m manystore"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else script


def demo_config(directory: str) -> dict[str, Any]:
    """The embedded configuration: profiles ``source``, ``replica`` and ``layers`` over directories of ``directory``."""
    return {
        "profiles": {
            name: {
                "storage_provider": {
                    "type": "file",
                    "options": {"base_path": os.path.join(os.path.abspath(directory), name)},
                },
            }
            for name in PROFILES
        }
    }


@dataclass
class _Step:
    name: str
    objects: int
    nbytes: int | None
    seconds: float
    note: str = ""


class _Timer:
    """Context manager measuring wall time in ``seconds``."""

    def __enter__(self) -> _Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def _write_dataset(client: StorageClient, objects: int, seed: int) -> tuple[int, int]:
    """Write ``objects`` shards (80% binary under ``train/``, the rest JSON lines under ``val/``)."""
    rng = random.Random(seed)
    n_train = max(1, objects * 4 // 5)
    total = 0
    for i in range(n_train):
        body = rng.randbytes(rng.randint(1024, 8192))
        client.write(f"train/shard-{i:05d}.bin", body)
        total += len(body)
    for i in range(objects - n_train):
        with client.open(f"val/shard-{i:05d}.jsonl", "w") as fh:
            for j in range(rng.randint(20, 60)):
                line = json.dumps({"id": i * 1000 + j, "label": rng.randint(0, 9), "x": rng.random()}) + "\n"
                fh.write(line)
                total += len(line.encode())
    return objects, total


def _digests(client: StorageClient) -> dict[str, str]:
    """SHA-256 of every object of ``client``, by key."""
    return {meta.key: hashlib.sha256(client.read(meta.key)).hexdigest() for meta in client.list("")}


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _print_table(steps: list[_Step]) -> None:
    header = f"{'step':<10} {'objects':>8} {'bytes':>8} {'ms':>8} {'objects/s':>10} {'MB/s':>8}  note"
    print(header)
    print("-" * len(header))
    for s in steps:
        size = "-" if s.nbytes is None else human_size(s.nbytes)
        speed = "-" if s.nbytes is None else f"{_rate(s.nbytes / 1e6, s.seconds):.1f}"
        print(
            f"{s.name:<10} {s.objects:>8} {size:>8} {s.seconds * 1000:>8.1f} "
            f"{_rate(s.objects, s.seconds):>10.0f} {speed:>8}  {s.note}"
        )


def run(directory: str, objects: int = 200, seed: int = 0) -> int:
    """Run the demo under ``directory``; return 0 if the replica matches the source, else 1."""
    for name in (*PROFILES, "archives"):
        shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    config = demo_config(directory)
    source = StorageClient(StorageClientConfig.from_dict(config, "source"))
    replica = StorageClient(StorageClientConfig.from_dict(config, "replica"))
    steps: list[_Step] = []

    with _Timer() as t:
        count, nbytes = _write_dataset(source, objects, seed)
    steps.append(_Step("write", count, nbytes, t.seconds, "StorageClient.write / open('w')"))

    with _Timer() as t:
        listed = list(source.list(""))
    listed_bytes = sum(m.content_length for m in listed)
    steps.append(_Step("list", len(listed), listed_bytes, t.seconds, "list('')"))

    with _Timer() as t:
        train = source.glob("train/*.bin")
        val = source.glob("**/*.jsonl")
    steps.append(
        _Step(
            "glob",
            len(train) + len(val),
            None,
            t.seconds,
            f"train/*.bin: {len(train)}, **/*.jsonl: {len(val)}",
        )
    )

    with _Timer() as t:
        replica.sync_from(source)
    steps.append(_Step("sync", len(listed), listed_bytes, t.seconds, "replica.sync_from(source)"))

    with _Timer() as t:
        want, got = _digests(source), _digests(replica)
    mismatched = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    verdict = "sha256 match" if not mismatched else f"{len(mismatched)} MISMATCHED"
    steps.append(_Step("verify", len(want) + len(got), 2 * listed_bytes, t.seconds, verdict))

    key = train[0] if train else listed[0].key
    with _Timer() as t:
        part = replica.read(key, Range(offset=100, size=64))
    ranged_ok = part == source.read(key)[100:164]
    steps.append(_Step("range", 1, len(part), t.seconds, f"{key}[100:164] {'ok' if ranged_ok else 'WRONG'}"))

    config_path = os.path.join(os.path.abspath(directory), "msc_config.json")
    with open(config_path, "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2)

    print(f"manystore demo: {count} objects, {human_size(nbytes)} in {os.path.abspath(directory)}\n")
    _print_table(steps)
    print(f"\nTry the CLI on it:\n  MSC_CONFIG={config_path} {_cli_command()} ls -l -h msc://replica/val/")
    if mismatched or not ranged_ok or len(listed) != count:
        print(f"\nFAILED: {mismatched[:5]} ranged_ok={ranged_ok} listed={len(listed)}", file=sys.stderr)
        return 1
    if _torch_step(config_path, os.path.join(os.path.dirname(config_path), "checkpoints", "step-1")) != 0:
        print("\nFAILED: the DataLoader epoch or the checkpoint", file=sys.stderr)
        return 1
    archives = os.path.join(os.path.dirname(config_path), "archives")
    batch = [sys.executable, "-m", "manystore.batch.demo", config_path, "msc://replica/train/", archives]
    if subprocess.run(batch, check=False).returncode != 0:
        print("\nFAILED: the archive, member read or Get-Batch step", file=sys.stderr)
        return 1
    if _samples_step(config_path) != 0:
        print("\nFAILED: the typed-samples step", file=sys.stderr)
        return 1
    if _arrays_step(config_path) != 0:
        print("\nFAILED: the arrays step", file=sys.stderr)
        return 1
    print("\nOK: replica matches source")
    return 0


def _torch_step(config_path: str, checkpoint: str) -> int:
    """One DataLoader epoch over ``msc://replica/train/`` and a DCP checkpoint saved to and loaded
    from ``checkpoint``, in a child process (needs PyTorch)."""
    print()
    if importlib.util.find_spec("torch") is None:
        print("torch step skipped: it needs PyTorch (pip install 'manystore[torch]')")
        return 0
    command = [sys.executable, "-m", "manystore.torch.demo", config_path, "msc://replica/train/", checkpoint]
    return subprocess.run(command, check=False).returncode


def _samples_step(config_path: str) -> int:
    """Typed samples written to WebDataset shards and read back in a shuffled epoch, in a child
    process (needs numpy and msgpack)."""
    if importlib.util.find_spec("numpy") is None or importlib.util.find_spec("msgpack") is None:
        print("\nsamples step skipped: it needs numpy and msgpack (pip install 'manystore[samples]')")
        return 0
    index = os.path.join(os.path.dirname(config_path), "index.db")
    for stale in (index, index + "-wal", index + "-shm"):
        if os.path.exists(stale):
            os.unlink(stale)
    command = [sys.executable, "-m", "manystore.samples.demo", config_path, "msc://layers/shards/", index]
    return subprocess.run(command, check=False).returncode


def _arrays_step(config_path: str) -> int:
    """numpy arrays stored as objects through the cottoncandy-style interface, in a child
    process (needs numpy)."""
    if importlib.util.find_spec("numpy") is None:
        print("\narrays step skipped: it needs numpy (pip install 'manystore[arrays]')")
        return 0
    command = [sys.executable, "-m", "manystore.arrays.demo", config_path, "msc://layers/arrays/"]
    return subprocess.run(command, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the demo.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when every check passed.
    """
    parser = argparse.ArgumentParser(prog="python -m manystore.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"output directory (default ./{DEFAULT_DIR})")
    parser.add_argument("--objects", type=int, default=200, help="number of shards to write (200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the dataset")
    args = parser.parse_args(argv)
    if args.objects < 1:
        parser.error("--objects must be >= 1")
    return run(args.dir, args.objects, args.seed)


if __name__ == "__main__":
    sys.exit(main())
