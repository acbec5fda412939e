"""``manystore archive ls|get|create`` and ``manystore batch get``: the batch layer's commands.

They are registered by the ``manystore`` command (``manystore.cli`` loads this module by
name, so the URL-level CLI does not import the ML layers until it builds its parser) and
follow its conventions: URLs as in the Python API, exit status 0 / 1 (an operation, or
some items, failed) / 2 (usage), one-line errors, a progress bar on stderr for long
work (``-q`` hides it, ``--progress`` forces it).

* ``archive ls ARCHIVE [-l]`` — the members (``-l``: size and name).
* ``archive get ARCHIVE [MEMBER] [-o OUT]`` — one member's bytes (or, with ``--regex`` and
  ``--mode``, a tar of the matching members) to OUT (a path or any URL; default stdout).
  ``ARCHIVE?archpath=MEMBER`` (``Object.get_url(archpath=)``) names the member too.
* ``archive create ARCHIVE SRC [--template T | NAME ...]`` — an archive (format from
  ARCHIVE's suffix) of the objects under the prefix SRC, streamed; ``--append``,
  ``--continue-on-error``, ``--include-source-name``.
* ``batch get SRC [NAME ...] [--template T] -o OUT`` — Get-Batch of the objects (names
  relative to SRC; ``name?archpath=member`` for a member) as one archive (``.tar``,
  ``.tgz``, ``.zip`` from OUT's suffix, or ``--format``); a missing item is an empty
  ``__404__/`` member and exit status 1 (``--strict``: stop at the first, store nothing).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_progress", "bucket_url", "register", "watch_job"]

_MODES = ("regexp", "prefix", "suffix", "substr", "wdskey")


def _fail(url: str | None, cause: BaseException | str, code: int | None = None) -> Exception:
    from ..cli._common import _Failed

    return _Failed(url, cause, code)


def _progress(args: argparse.Namespace, total: int | None, unit: str) -> Any:
    from ..cli._common import _progress_wanted

    if not _progress_wanted(args):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


def _split_url(url: str) -> tuple[str, str]:
    """``(bucket URL, object name)`` of an object URL: the name is its last path segment."""
    head, sep, name = url.rstrip("/").rpartition("/")
    if not sep or not name or head.endswith(":/"):
        raise _fail(url, f"expected the URL of an object (e.g. s3://bucket/dir/{name or 'x.tar'})", 2)
    return head or "/", name


def bucket_url(url: str) -> str:
    """A command-line URL for :meth:`Client.bucket`: a plain path (``data/in``) is a local
    directory, as for every other command, not a bare AIS bucket name."""
    import os

    return url if "://" in url else os.path.abspath(os.path.expanduser(url))


def _resolve(url: str) -> tuple[Any, str]:
    from ..cli._common import _resolve as resolve

    return resolve(url)


def _open_out(target: str) -> Any:
    """A binary writer for ``-o``: stdout for ``-``, else ``client.open(key, "wb")`` (atomic)."""
    if target == "-":
        return None
    client, key = _resolve(target)
    return client.open(key, "wb")


def _cmd_archive_ls(args: argparse.Namespace) -> int:
    from ..utils import human_size
    from .archive import list_archive
    from .obj import split_archpath

    url, _ = split_archpath(args.url)
    client, key = _resolve(url)
    for member in list_archive(client, key):
        if args.long:
            size = human_size(member.size) if args.human_readable else str(member.size)
            print(f"{size:>10}  {member.name}")
        else:
            print(member.name)
    return 0


def _cmd_archive_get(args: argparse.Namespace) -> int:
    from .archive import ArchiveConfig, extract_stream
    from .obj import split_archpath

    url, member = split_archpath(args.url)
    member = args.member or member
    if bool(member) == bool(args.regex):
        raise _fail(args.url, "give one MEMBER (or ARCHIVE?archpath=MEMBER), or --regex with --mode", 2)
    config = ArchiveConfig(archpath=member) if member else ArchiveConfig(regex=args.regex, mode=args.mode)
    client, key = _resolve(url)
    chunks = extract_stream(client, key, config)
    sink = _open_out(args.output)
    if sink is None:
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return 0
    with sink:
        for chunk in chunks:
            sink.write(chunk)
    return 0


def watch_job(args: argparse.Namespace, job: Any) -> Any:
    """Wait for ``job`` to finish, with a progress bar in objects (per ``-q``/``--progress``).

    Args:
        args: The command's arguments (``quiet``, ``progress``).
        job: A :class:`~manystore.batch.Job`.

    Returns:
        Its final :class:`~manystore.batch.JobStatus`.
    """
    import time

    bar = _progress(args, None, "obj")
    try:
        while True:
            status = job.status()
            if bar is not None:
                bar.total = status.total
                bar.update(status.objects_done + status.objects_failed - bar.n)
            if status.finished:
                if bar is not None:
                    bar.refresh()
                return status
            time.sleep(0.1)
    finally:
        if bar is not None:
            bar.close()


def _cmd_archive_create(args: argparse.Namespace) -> int:
    from .client import Client

    if args.template and args.names:
        raise _fail(args.src, "give NAMEs or --template, not both", 2)
    dest_bucket, archive_name = _split_url(args.archive)
    client = Client()
    try:
        src = client.bucket(bucket_url(args.src))
        to_bck = client.bucket(bucket_url(dest_bucket))
    except ValueError as exc:
        raise _fail(args.src, exc, 2) from exc
    if args.template:
        group = src.objects(obj_template=args.template)
    elif args.names:
        group = src.objects(obj_names=args.names)
    else:
        from .templates import ObjectRange

        group = src.objects(obj_range=ObjectRange(prefix=""))
    job_id = group.archive(
        archive_name,
        mime=args.format or "",
        to_bck=to_bck,
        include_source_name=args.include_source_name,
        allow_append=args.append,
        continue_on_err=args.continue_on_error,
    )[0]
    status = watch_job(args, client.job(job_id))
    for name, cause in status.errors.items():
        print(
            f"manystore: archive create: {src._url(name) if name != '<job>' else args.archive}: {cause}",
            file=sys.stderr,
        )
    if status.state != "done":
        print(f"manystore: archive create: {args.archive}: not created", file=sys.stderr)
        return 1
    print(f"archived {status.objects_done} objects ({status.bytes} bytes) into {args.archive}")
    return 1 if status.objects_failed else 0


def _cmd_batch_get(args: argparse.Namespace) -> int:
    from .client import Client
    from .templates import ObjectTemplate

    if args.template and args.names:
        raise _fail(args.src, "give NAMEs or --template, not both", 2)
    if not args.template and not args.names:
        raise _fail(args.src, "give the objects: NAME ... or --template", 2)
    names = list(ObjectTemplate(args.template)) if args.template else list(args.names)
    fmt = args.format
    if fmt is None:
        lower = args.output.lower()
        fmt = next((s for s in (".tar.gz", ".tgz", ".zip", ".tar") if lower.endswith(s)), ".tar")
    client = Client()
    try:
        bucket = client.bucket(bucket_url(args.src))
        batch = client.batch(
            names,
            bucket=bucket,
            output_format=fmt,
            cont_on_err=not args.strict,
            only_obj_name=args.only_obj_name,
            streaming_get=not args.strict,
            workers=args.workers,
        )
    except ValueError as exc:
        raise _fail(args.src, exc, 2) from exc
    from .getbatch import BatchStream

    stream = batch.get(raw=True)
    request = batch.last_request
    assert request is not None and isinstance(stream, BatchStream)
    bar = _progress(args, len(names), "obj")
    sink = _open_out(args.output)
    out = sys.stdout.buffer if sink is None else sink
    try:
        while chunk := stream.read(1 << 20):
            out.write(chunk)
            if bar is not None:
                bar.update(request.stats.items - bar.n)
    except BaseException as exc:
        if sink is not None:
            sink.abort()  # nothing stored
        if isinstance(exc, FileNotFoundError):  # --strict: name the missing item
            raise _fail(getattr(exc, "url", None) or args.src, exc) from exc
        raise
    finally:
        stream.close()
        if bar is not None:
            bar.update(request.stats.items - bar.n)
            bar.refresh()
            bar.close()
    if sink is not None:
        sink.close()
    else:
        out.flush()
    for info in request.failed:
        print(f"manystore: batch get: {bucket._url(info.obj_name)}: {info.err_msg}", file=sys.stderr)
    stats = request.stats
    summary = f"fetched {stats.items - stats.errors} of {stats.items} objects ({stats.bytes} bytes) into {args.output}"
    print(summary, file=sys.stderr if sink is None else sys.stdout)
    return 1 if stats.errors else 0


def add_progress(p: argparse.ArgumentParser) -> None:
    """Add ``-q``/``--quiet`` and ``--progress`` (read by :func:`watch_job`) to a command."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--progress", action="store_true", help="show the progress bar even if stderr is not a terminal"
    )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``archive`` and ``batch`` subcommands to the CLI's subparsers."""
    archive = sub.add_parser("archive", help="list, read and create tar / tar.gz / zip archive objects")
    actions = archive.add_subparsers(dest="archive_command", metavar="ACTION", required=True)

    ls = actions.add_parser("ls", parents=[common], add_help=False, help="list an archive's members")
    ls.add_argument("--help", action="help", help="show this help message and exit")
    ls.add_argument("url", metavar="ARCHIVE", help="the archive object's URL")
    ls.add_argument("-l", "--long", action="store_true", help="show sizes")
    ls.add_argument("-h", "--human-readable", action="store_true", help="sizes like 1.5K, 20M")
    ls.set_defaults(func=_cmd_archive_ls, command="archive ls")

    get = actions.add_parser(
        "get", parents=[common], help="read one member (or the matching members as a tar)"
    )
    get.add_argument("url", metavar="ARCHIVE", help="the archive object's URL (or ARCHIVE?archpath=MEMBER)")
    get.add_argument("member", metavar="MEMBER", nargs="?", help="the member's path in the archive")
    get.add_argument("--regex", help="select several members (written as a tar)")
    get.add_argument("--mode", choices=_MODES, default="regexp", help="how --regex matches (default regexp)")
    get.add_argument("-o", "--output", default="-", metavar="OUT", help="a path or URL (default: stdout)")
    get.set_defaults(func=_cmd_archive_get, command="archive get")

    create = actions.add_parser("create", parents=[common], help="archive objects into a tar / tar.gz / zip")
    create.add_argument(
        "archive", metavar="ARCHIVE", help="URL of the archive to write (.tar, .tgz, .tar.gz, .zip)"
    )
    create.add_argument("src", metavar="SRC", help="URL prefix the objects are under")
    create.add_argument("names", metavar="NAME", nargs="*", help="object names under SRC (default: all)")
    create.add_argument(
        "--template", metavar="T", help="names by brace expansion, e.g. 'img-{0000..0999}.jpg'"
    )
    create.add_argument("--format", metavar="FMT", help="tar, tgz or zip (default: from ARCHIVE's suffix)")
    create.add_argument("--append", action="store_true", help="add to an existing archive")
    create.add_argument("--continue-on-error", action="store_true", help="skip missing objects (exit 1)")
    create.add_argument(
        "--include-source-name", action="store_true", help="name members <bucket path>/<name>"
    )
    add_progress(create)
    create.set_defaults(func=_cmd_archive_create, command="archive create")

    batch = sub.add_parser("batch", help="Get-Batch: many objects as one archive")
    batch_actions = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    bget = batch_actions.add_parser(
        "get", parents=[common], help="fetch objects (and members) into one archive"
    )
    bget.add_argument("src", metavar="SRC", help="URL prefix the names are under")
    bget.add_argument(
        "names", metavar="NAME", nargs="*", help="object names (NAME?archpath=MEMBER for a member)"
    )
    bget.add_argument("--template", metavar="T", help="names by brace expansion, e.g. 'shard-{000..099}.tar'")
    bget.add_argument("-o", "--output", required=True, metavar="OUT", help="a path or URL, or - for stdout")
    bget.add_argument(
        "--format", choices=(".tar", ".tgz", ".tar.gz", ".zip"), help="default: from OUT's suffix"
    )
    bget.add_argument("--only-obj-name", action="store_true", help="name members by object name alone")
    bget.add_argument("--strict", action="store_true", help="fail (store nothing) if any item is missing")
    bget.add_argument("--workers", type=int, default=None, metavar="N", help="fetching threads (default 16)")
    add_progress(bget)
    bget.set_defaults(func=_cmd_batch_get, command="batch get")
