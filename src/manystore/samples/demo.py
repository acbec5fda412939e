"""The typed-samples step of ``make demo``: shards of packable samples (``python -m manystore.samples.demo``).

Usage: ``python -m manystore.samples.demo CONFIG URL INDEX``. With ``MSC_CONFIG=CONFIG``, it
writes 2,000 typed samples (a 3x32x32 ``uint8`` image and a label, packed with msgpack in
atdata's wire format) into WebDataset tar shards of at most 1 MiB under ``URL`` (each shard
streamed straight to the store with its member index), reads them back in one shuffled epoch
(in a DataLoader with 2 worker processes when PyTorch is installed), reads one sample by its
index (one ranged GET), records the dataset and its schema in a SQLite index at ``INDEX``
and checks every label and pixel. Needs numpy and msgpack (``manystore[samples]``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .sample import NDArray, PackableSample, packable

__all__ = ["Image", "main"]

#: Samples written by the demo.
SAMPLES = 2000


@packable
class Image(PackableSample):
    """One demo sample: a small RGB image and its class."""

    image: NDArray
    label: int


def pixels(label: int) -> Any:
    """The demo image of ``label``: every pixel ``label % 251``."""
    return np.full((3, 32, 32), label % 251, dtype=np.uint8)


def _row(step: str, count: int, seconds: float, note: str) -> None:
    print(f"{step:<14} {count:>7} {seconds * 1000:>8.1f}ms {count / max(seconds, 1e-9):>9.0f}/s  {note}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the step; returns 0 when every sample read back is the one written.

    Args:
        argv: ``[CONFIG, URL, INDEX]`` (default: ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m manystore.samples.demo CONFIG URL INDEX", file=sys.stderr)
        return 2
    os.environ["MSC_CONFIG"] = args[0]
    from . import Dataset, LocalIndex, write_samples

    url = args[1].rstrip("/")
    print(f"\nsamples (typed samples in WebDataset shards under {url}/):")
    start = time.perf_counter()
    urls = write_samples(
        (Image(image=pixels(i), label=i) for i in range(SAMPLES)),
        f"{url}/train-%06d.tar",
        maxsize=1 << 20,
    )
    _row("write", SAMPLES, time.perf_counter() - start, f"write_samples: {len(urls)} shards of <= 1 MiB")

    ds = Dataset[Image](f"{url}/train-{{000000..{len(urls) - 1:06d}}}.tar")
    loader = ds.shuffled(buffer_shards=4, buffer_samples=500, seed=0, batch_size=64)
    start = time.perf_counter()
    assert len(loader) == SAMPLES  # counts from the shards' member indexes, before any worker starts
    seen: list[int] = []
    ok = True
    if importlib.util.find_spec("torch") is not None:
        from torch.utils.data import DataLoader

        batches: Any = DataLoader(loader, batch_size=None, num_workers=2)
        how = "DataLoader, 2 workers, batches of 64"
    else:
        batches = loader
        how = "batches of 64 (no PyTorch: in this process)"
    for batch in batches:
        labels = [int(v) for v in batch.label]
        seen.extend(labels)
        ok = ok and all(
            bool((img == pixels(lab)).all()) for img, lab in zip(batch.image, labels, strict=True)
        )
    elapsed = time.perf_counter() - start
    in_order = seen == sorted(seen)
    ok = ok and sorted(seen) == list(range(SAMPLES))
    _row(
        "read shuffled",
        len(seen),
        elapsed,
        f"{how}: {'ok' if ok else 'WRONG'}{'' if not in_order else ' (NOT shuffled)'}",
    )
    ok = ok and not in_order

    from ..batch.archive import list_archive, read_member
    from ..shortcuts import resolve_storage_client

    client, path = resolve_storage_client(urls[1])
    members = list_archive(client, path)  # from the shard's .idx sidecar (one small GET)
    start = time.perf_counter()
    member_name = members[3].name
    sample = Image.from_bytes(read_member(client, path, member_name))  # one ranged GET
    ok = ok and 0 <= sample.label < SAMPLES and bool((sample.image == pixels(sample.label)).all())
    _row(
        "random access",
        1,
        time.perf_counter() - start,
        f"{member_name} of shard 1 (one ranged GET): label {sample.label}",
    )

    start = time.perf_counter()
    idx = LocalIndex(args[2])
    ref = idx.publish_schema(Image, version="1.0.0")
    idx.insert_dataset(ds, name="demo-train", schema_ref=ref)
    entry = idx.get_dataset("demo-train")
    decoded = idx.decode_schema(ref)
    same = decoded.from_bytes(Image(image=pixels(7), label=7).packed).label == 7
    ok = ok and same and len(entry.data_urls) == len(urls)
    _row("index", 1, time.perf_counter() - start, f"{ref}: dataset demo-train, {len(entry.data_urls)} shards")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
