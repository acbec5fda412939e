"""The many-objects step of ``make demo``: a shard archive, one member read, a Get-Batch (``python -m manystore.batch.demo``).

Usage: ``python -m manystore.batch.demo CONFIG URL ARCHIVES``. With ``MSC_CONFIG=CONFIG``, it
takes the first 16 objects under ``URL`` as an object group (AIStore SDK style), archives them
into one tar shard ``train-000.tar`` under ``ARCHIVES`` (any URL or directory; written as a job
that streams every member into one multipart upload), lists the shard, reads one member back through its index (one
ranged GET), fetches all 16 objects again as one ordered Get-Batch, compares every byte with
direct reads and prints what it did and how fast.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]

MEMBERS = 16


def _row(step: str, count: int, nbytes: int, seconds: float, note: str) -> None:
    print(
        f"{step:<10} {count:>8} {nbytes / 1e6:>7.2f}MB {seconds * 1000:>8.1f} "
        f"{count / max(seconds, 1e-9):>10.0f}           {note}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the step; returns 0 when every byte read back matches.

    Args:
        argv: ``[CONFIG, URL, ARCHIVES]`` (default: ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m manystore.batch.demo CONFIG URL ARCHIVES", file=sys.stderr)
        return 2
    os.environ["MSC_CONFIG"] = args[0]
    from .client import Client

    url = args[1].rstrip("/") + "/"
    client = Client()
    bucket = client.bucket(url)
    shards = client.bucket(args[2])
    names = sorted(e.name for e in bucket.list_all_objects())[:MEMBERS]
    direct = {name: bucket.object(name).get_reader().read_all() for name in names}
    nbytes = sum(len(v) for v in direct.values())

    start = time.perf_counter()
    job_id = bucket.objects(obj_names=names).archive("train-000.tar", to_bck=shards)[0]
    archived = client.job(job_id).wait(timeout=120)
    members = shards.list_archive("train-000.tar")
    _row(
        "archive",
        len(names),
        nbytes,
        time.perf_counter() - start,
        f"ObjectGroup.archive -> {args[2].rstrip('/')}/train-000.tar ({len(members)} members listed): "
        f"{'ok' if archived and len(members) == len(names) else 'WRONG'}",
    )
    from .archive import ArchiveConfig

    start = time.perf_counter()
    pick = names[len(names) // 2]
    member = shards.object("train-000.tar").get_reader(archive_config=ArchiveConfig(archpath=pick)).read_all()
    member_ok = member == direct[pick]
    _row(
        "member",
        1,
        len(member),
        time.perf_counter() - start,
        f"get_reader(archive_config=ArchiveConfig(archpath={pick!r})): {'ok' if member_ok else 'WRONG'}",
    )

    start = time.perf_counter()
    batch = client.batch([bucket.object(name) for name in names])
    fetched = [(info.obj_name, data) for info, data in batch.get()]
    batch_ok = fetched == [(name, direct[name]) for name in names]
    _row(
        "get-batch",
        len(fetched),
        sum(len(d) for _, d in fetched),
        time.perf_counter() - start,
        f"Client.batch: {len(fetched)} objects in request order: {'ok' if batch_ok else 'WRONG'}",
    )
    return 0 if archived and member_ok and batch_ok and len(members) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
