"""``manystore sync SRC DST``: make DST mirror SRC (new or changed objects only).

Options: ``--delete`` removes objects under DST that SRC lacks; ``--dry-run`` only reports;
``--include``/``--exclude`` glob patterns on keys relative to SRC (repeatable); ``--workers``
transfer threads (per process); ``--processes`` worker processes; ``--ray`` runs listing and
transfers as Ray tasks on a local Ray instance, ``--ray-address ADDR`` (or ``--ray=ADDR``) on
the cluster at ADDR; ``--progress`` shows the bar even when stderr is not a terminal.

Exit status 0 when everything synced (a warning on stderr when SRC is an empty directory or
bucket), 1 when SRC does not exist (no such directory or prefix) or some objects failed
(each is listed on stderr with its cause; the others were synced, and a rerun completes the rest).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["normalize_argv", "register"]


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """``--ray=ADDR`` becomes ``--ray-address=ADDR`` (``--ray`` itself takes no value, so
    ``sync --ray SRC DST`` keeps both positionals). Arguments after ``--`` are left alone."""
    out: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[index:])
        out.append("--ray-address=" + arg[len("--ray=") :] if arg.startswith("--ray=") else arg)
    return out


def _cmd_sync(args: argparse.Namespace) -> int:
    from ..mirror import EmptySourceWarning, SyncError, sync_clients
    from ..shortcuts import resolve_storage_client

    source, source_path = resolve_storage_client(args.src)
    target, target_path = resolve_storage_client(args.dst)
    if args.delete and source.is_empty(source_path):
        print(
            f"manystore: sync: {args.src}: no objects under it; refusing --delete, which would empty {args.dst}",
            file=sys.stderr,
        )
        return 1
    ray = args.ray or args.ray_address is not None
    logging.getLogger("manystore.mirror").addHandler(logging.NullHandler())  # the CLI reports it itself
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmptySourceWarning)
        try:
            result = sync_clients(
                source,
                source_path,
                target,
                target_path,
                delete_unmatched_files=args.delete,
                threads=args.workers,
                include=args.include,
                exclude=args.exclude,
                dry_run=args.dry_run,
                progress=args.progress or (not args.quiet and sys.stderr.isatty()),
                num_worker_processes=args.processes,
                execution="ray" if ray else "local",
                ray_address=args.ray_address or None,
            )
        except SyncError as err:
            result = err.result
            for key, cause in err.failures.items():
                print(f"manystore: sync: {key}: {cause}", file=sys.stderr)
            print(_summary(result, args.dry_run) + f", {len(err.failures)} failed")
            return 1
    for warning in caught:
        if not isinstance(warning.message, EmptySourceWarning):
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
            continue
        if warning.message.missing:
            print(f"manystore: sync: {args.src}: {warning.message.reason}", file=sys.stderr)
            return 1
        print(
            f"manystore: sync: warning: {args.src}: {warning.message.reason}; nothing to sync",
            file=sys.stderr,
        )
    print(_summary(result, args.dry_run))
    return 0


def _summary(result: Any, dry_run: bool) -> str:
    verb = "would copy" if dry_run else "copied"
    gone = "would delete" if dry_run else "deleted"
    return f"{verb} {result.copied} ({result.bytes_copied} bytes), skipped {result.skipped}, {gone} {result.deleted}"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``sync`` subcommand to the CLI's subparsers."""
    p = sub.add_parser("sync", parents=[common], help="make DST mirror SRC (new or changed objects)")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--delete", action="store_true", help="delete objects under DST that SRC lacks")
    p.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")
    p.add_argument("--include", action="append", metavar="GLOB", help="only keys matching (repeatable)")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip keys matching (repeatable)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="transfer threads (default 16)")
    p.add_argument("--processes", type=int, default=None, metavar="N", help="worker processes (default 1)")
    p.add_argument(
        "--ray",
        action="store_true",
        help="run on Ray, a local instance unless --ray-address (needs manystore[ray])",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="run on the Ray cluster at ADDR (implies --ray; --ray=ADDR is the same)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--progress", action="store_true", help="show the progress bar even if stderr is not a terminal"
    )
    p.set_defaults(func=_cmd_sync, command="sync")
