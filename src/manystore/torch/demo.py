"""The PyTorch step of ``make demo``: a DataLoader epoch and a checkpoint (``python -m manystore.torch.demo``).

Usage: ``python -m manystore.torch.demo CONFIG URL CHECKPOINT`` reads every object under ``URL`` (with
``MSC_CONFIG=CONFIG``) through an :class:`~manystore.torch.IterableDataset` in a DataLoader
with 2 forked workers, then saves a small model's state with ``torch.distributed.checkpoint``
through :class:`~manystore.torch.dcp.StorageWriter` to ``CHECKPOINT`` (any URL or path),
loads it back into a fresh model through :class:`~manystore.torch.dcp.StorageReader`, and
prints what it did and how fast.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]


def _length(reader: object) -> int:
    return len(reader.read())  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one epoch; returns 0 when every object was read exactly once.

    Args:
        argv: ``[CONFIG, URL, CHECKPOINT]`` (default: ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m manystore.torch.demo CONFIG URL CHECKPOINT", file=sys.stderr)
        return 2
    os.environ["MSC_CONFIG"] = args[0]
    import torch.utils.data

    from .datasets import IterableDataset

    start = time.perf_counter()
    dataset = IterableDataset.from_prefix(
        args[1], transform=_length, enable_sharding=True, shuffle=True, seed=0
    )
    listed = time.perf_counter()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=32, num_workers=2, multiprocessing_context="fork" if hasattr(os, "fork") else None
    )
    count = total = 0
    for batch in loader:
        count += len(batch)
        total += int(batch.sum())
    done = time.perf_counter()
    ok = count == len(dataset)
    print(
        f"torch      {count:>8} {total / 1e6:>7.2f}MB {(done - start) * 1000:>8.1f} "
        f"{count / max(done - listed, 1e-9):>10.0f}           IterableDataset.from_prefix "
        f"(listed once in {(listed - start) * 1000:.0f} ms), DataLoader 2 workers, shuffled: "
        f"{'ok' if ok else 'WRONG COUNT'}"
    )
    return (0 if ok else 1) or _checkpoint(args[2])


def _checkpoint(url: str) -> int:
    """Save a small model with DCP to ``url``, load it into another model, compare."""
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)  # one process here

    from .dcp import StorageReader, StorageWriter

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    start = time.perf_counter()
    dcp.save({"model": model.state_dict()}, storage_writer=StorageWriter(url))
    saved = time.perf_counter()
    torch.manual_seed(1)
    other = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    state = {"model": other.state_dict()}
    dcp.load(state, storage_reader=StorageReader(url))
    other.load_state_dict(state["model"])
    loaded = time.perf_counter()
    same = all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    )
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    print(
        f"checkpoint {len(state['model']):>8} {size / 1e6:>7.2f}MB {(loaded - start) * 1000:>8.1f} "
        f"{'':>10}           DCP save {(saved - start) * 1000:.0f} ms + load {(loaded - saved) * 1000:.0f} ms "
        f"to {url}: {'ok' if same else 'MISMATCH'}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
