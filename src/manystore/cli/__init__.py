"""The ``manystore`` command line: list, copy, remove, print and inspect objects by URL.

URLs are those of the Python API: ``msc://profile/key``, ``s3://bucket/key`` (an implicit
profile), ``file:///abs/path`` and plain local paths. The configuration is found as by
:func:`manystore.config.read_msc_config` (``MSC_CONFIG`` first).

Exit status: 0 on success, 1 when an operation fails (missing object, storage error,
partial failure of a recursive copy), 2 for usage errors (bad arguments, bad URL,
unknown profile, invalid configuration). Errors are printed to stderr as one line,
``manystore: <command>: <URL>: <cause>``; ``--debug`` (or ``MANYSTORE_DEBUG=1``) adds
the traceback.

Only the standard library is imported at start-up; storage modules and ``tqdm`` are
imported by the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from datetime import timezone
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ..client import StorageClient
    from ..file import PosixFile
    from ..types import ObjectMetadata

__all__ = ["main"]

#: Chunk size for streamed reads and copies.
CHUNK_SIZE = 8 << 20
#: A single-object copy shows a progress bar from this size up.
SINGLE_PROGRESS_BYTES = 64 << 20
#: Objects up to this size are fetched in one request by ``cat`` and streamed copies.
STREAM_MEMORY_LIMIT = 32 << 20
DEFAULT_JOBS = 16


class _Failed(Exception):
    """A command failure to report: the URL it concerns, the cause and (optionally) the exit code."""

    def __init__(self, url: str | None, cause: BaseException | str, code: int | None = None) -> None:
        super().__init__(str(cause))
        self.url = url
        self.cause = cause
        self.code = code


# ------------------------------------------------------------------ helpers
def _exit_code(exc: BaseException | str) -> int:
    """2 for usage/configuration problems, 1 for everything else."""
    from ..errors import ConfigError, InvalidPathError, InvalidURLError

    return 2 if isinstance(exc, (ConfigError, InvalidURLError, InvalidPathError)) else 1


def _cause_text(url: str | None, exc: BaseException | str) -> str:
    """One line describing ``exc``, without repeating ``url``."""
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    if url and text.startswith(url + ": "):
        text = text[len(url) + 2 :]
    return text


def _report(command: str, url: str | None, exc: BaseException | str) -> None:
    parts = ["manystore", command]
    if url:
        parts.append(url)
    parts.append(_cause_text(url, exc))
    print(": ".join(parts), file=sys.stderr)


def _resolve(url: str) -> tuple[StorageClient, str]:
    """The client and key of ``url``; failures are tagged with the URL."""
    from ..shortcuts import resolve_storage_client

    try:
        return resolve_storage_client(url)
    except Exception as exc:  # resolving does no I/O: a bad value (URL, config) is a usage error
        raise _Failed(url, exc, 2 if isinstance(exc, ValueError) else None) from exc


def _dir_prefix(key: str) -> str:
    """``"a/b"`` -> ``"a/b/"``; the profile root stays ``""``."""
    key = key.strip("/")
    return key + "/" if key else ""


def _is_local(client: StorageClient) -> bool:
    """True if the client stores plain local files (and has no metadata provider)."""
    from ..providers.base import BaseStorageProvider

    provider = client.config.storage_provider
    return (
        client.config.metadata_provider is None
        and isinstance(provider, BaseStorageProvider)
        and provider.local_path("") is not None
    )


def _progress_wanted(args: argparse.Namespace) -> bool:
    if getattr(args, "quiet", False):
        return False
    if getattr(args, "progress", False):
        return True
    return sys.stderr.isatty()


class _Progress:
    """A thread-safe tqdm bar on stderr counting bytes and objects; a no-op when disabled."""

    def __init__(self, total_bytes: int, total_objects: int, enabled: bool, desc: str) -> None:
        self._lock = threading.Lock()
        self._objects = 0
        self._total_objects = total_objects
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                file=sys.stderr,
                dynamic_ncols=True,
            )
            if total_objects > 1:
                self._bar.set_postfix_str(f"0/{total_objects} objects")

    def add_bytes(self, count: int) -> None:
        """Advance the byte count."""
        if self._bar is not None and count:
            with self._lock:
                self._bar.update(count)

    def object_done(self) -> None:
        """Count one finished object."""
        with self._lock:
            self._objects += 1
            if self._bar is not None and self._total_objects > 1:
                self._bar.set_postfix_str(f"{self._objects}/{self._total_objects} objects")

    def close(self) -> None:
        """Remove the bar's resources (the last state stays on screen)."""
        if self._bar is not None:
            self._bar.close()


class _CountingWriter:
    """Wraps a writable binary file, reporting newly written bytes (a retry rewinds, never double-counts)."""

    def __init__(self, target: IO[bytes], on_bytes: Callable[[int], None]) -> None:
        self._target = target
        self._on_bytes = on_bytes
        self._pos = 0
        self._reported = 0

    def write(self, data: Any) -> int:
        written = self._target.write(data)
        if not isinstance(written, int):
            written = memoryview(data).nbytes
        self._pos += written
        if self._pos > self._reported:
            self._on_bytes(self._pos - self._reported)
            self._reported = self._pos
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._target.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._target.tell()

    def truncate(self, size: int | None = None) -> int:
        return self._target.truncate(size)

    def flush(self) -> None:
        self._target.flush()


def _copy_object(
    src: StorageClient,
    src_key: str,
    dst: StorageClient,
    dst_key: str,
    size: int,
    on_bytes: Callable[[int], None],
    granular: bool = False,
) -> None:
    """Copy one object, reporting its bytes through ``on_bytes``.

    Same client: server-side copy. Local destination: ``download_file`` into an atomic
    local file. Local source: ``upload_file`` (multipart when large), unless ``granular``
    progress is wanted. Otherwise the bytes are streamed through ``open``.
    """
    if src is dst:
        src.copy(src_key, dst_key)
        on_bytes(size)
        return
    if _is_local(dst):
        with dst.open(dst_key, "wb") as writer:
            src.download_file(
                src_key, cast("IO[bytes]", _CountingWriter(cast("IO[bytes]", writer), on_bytes))
            )
        return
    if _is_local(src) and not granular:
        with src.open(src_key, "rb") as reader:
            dst.upload_file(dst_key, cast("PosixFile", reader).real_path)
        on_bytes(size)
        return
    with (
        src.open(src_key, "rb", memory_load_limit=STREAM_MEMORY_LIMIT) as reader,
        dst.open(dst_key, "wb") as out,
    ):
        while chunk := reader.read(CHUNK_SIZE):
            out.write(chunk)
            on_bytes(len(chunk))


# ----------------------------------------------------------------- commands
def _format_entry(meta: ObjectMetadata, name: str, long: bool, human: bool) -> str:
    from ..utils import human_size

    is_dir = meta.type == "directory"
    if is_dir:
        name = name.rstrip("/") + "/"
    if not long:
        return name
    if is_dir:
        return f"{'-':>10}  {'-':<20}  {name}"
    size = human_size(meta.content_length) if human else str(meta.content_length)
    when = meta.last_modified.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{size:>10}  {when:<20}  {name}"


def _cmd_ls(args: argparse.Namespace) -> int:
    client, key = _resolve(args.url)
    base = client.url_prefix
    if key.strip("/") and not args.url.endswith("/"):
        try:
            meta = client.info(key, strict=True)
        except FileNotFoundError:
            pass
        else:
            print(_format_entry(meta, base + meta.key, args.long, args.human_readable))
            return 0
    prefix = _dir_prefix(key)
    count = 0
    for meta in client.list(prefix, include_directories=not args.recursive):
        print(_format_entry(meta, base + meta.key, args.long, args.human_readable))
        count += 1
    if count == 0 and prefix:
        try:
            is_dir = client.info(prefix.rstrip("/"), strict=False).type == "directory"
        except FileNotFoundError:
            is_dir = False
        if not is_dir:
            raise _Failed(args.url, FileNotFoundError(args.url))
    return 0


def _single_destination(dst: StorageClient, dst_key: str, dst_url: str, src_key: str) -> str:
    """The key a single object lands on: inside ``dst_key`` when it names a directory."""
    into_dir = not dst_key.strip("/") or dst_url.endswith(("/", os.sep))
    if not into_dir and _is_local(dst):
        try:
            into_dir = dst.info(dst_key, strict=False).type == "directory"
        except FileNotFoundError:
            into_dir = False
    if into_dir:
        return _dir_prefix(dst_key) + posixpath.basename(src_key.rstrip("/"))
    return dst_key


def _cp_single(
    args: argparse.Namespace, src: StorageClient, src_key: str, dst: StorageClient, dst_key: str
) -> int:
    try:
        meta = src.info(src_key, strict=False)
    except Exception as exc:
        raise _Failed(args.src, exc) from exc
    if meta.type == "directory":
        raise _Failed(args.src, "is a directory (use -r to copy everything under it)", 1)
    dst_key = _single_destination(dst, dst_key, args.dst, src_key)
    if src is dst and src_key.strip("/") == dst_key.strip("/"):
        raise _Failed(args.src, "source and destination are the same object", 1)
    show = _progress_wanted(args) and meta.content_length >= SINGLE_PROGRESS_BYTES
    progress = _Progress(meta.content_length, 1, show, posixpath.basename(src_key))
    try:
        _copy_object(src, src_key, dst, dst_key, meta.content_length, progress.add_bytes, granular=show)
        progress.object_done()
    except Exception as exc:
        raise _Failed(args.src, exc) from exc
    finally:
        progress.close()
    return 0


def _cp_tree(
    args: argparse.Namespace, src: StorageClient, src_key: str, dst: StorageClient, dst_key: str
) -> int:
    src_prefix, dst_prefix = _dir_prefix(src_key), _dir_prefix(dst_key)
    try:
        listed = [(m.key, m.content_length) for m in src.list(src_prefix)]
    except Exception as exc:
        raise _Failed(args.src, exc) from exc
    if not listed:
        if src_key.strip("/") and src.is_file(src_key.rstrip("/")):
            return _cp_single(args, src, src_key.rstrip("/"), dst, dst_key)
        raise _Failed(args.src, FileNotFoundError(args.src))
    jobs = [(key, dst_prefix + key[len(src_prefix) :], size) for key, size in listed]
    if src is dst and any(s == d for s, d, _ in jobs):
        raise _Failed(args.src, "source and destination are the same", 1)
    total = sum(size for _, _, size in jobs)
    progress = _Progress(total, len(jobs), _progress_wanted(args), "cp")
    failures: list[tuple[str, BaseException]] = []
    from concurrent.futures import ThreadPoolExecutor, as_completed

    try:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = {
                pool.submit(_copy_object, src, s, dst, d, n, progress.add_bytes): s for s, d, n in jobs
            }
            for future in as_completed(futures):
                try:
                    future.result()
                    progress.object_done()
                except Exception as exc:
                    failures.append((src.url_prefix + futures[future], exc))
    finally:
        progress.close()
    for url, error in sorted(failures, key=lambda f: f[0]):
        _report("cp", url, error)
        if _debug(args):
            traceback.print_exception(error)
    if failures:
        print(f"manystore: cp: {len(failures)} of {len(jobs)} objects failed", file=sys.stderr)
        return 1
    return 0


def _cmd_cp(args: argparse.Namespace) -> int:
    src, src_key = _resolve(args.src)
    dst, dst_key = _resolve(args.dst)
    if args.recursive:
        return _cp_tree(args, src, src_key, dst, dst_key)
    return _cp_single(args, src, src_key, dst, dst_key)


def _cmd_rm(args: argparse.Namespace) -> int:
    client, key = _resolve(args.url)
    if args.recursive:
        if not key.strip("/"):
            raise _Failed(args.url, "refusing to delete a whole profile or file system; name a prefix", 2)
        client.delete(key, recursive=True)
        return 0
    if client.info(key, strict=False).type == "directory":
        raise _Failed(args.url, "is a directory (use -r to delete everything under it)", 1)
    client.delete(key)
    return 0


def _cmd_cat(args: argparse.Namespace) -> int:
    client, key = _resolve(args.url)
    out = getattr(sys.stdout, "buffer", None)
    with client.open(key, "rb", memory_load_limit=STREAM_MEMORY_LIMIT) as reader:
        while chunk := reader.read(CHUNK_SIZE):
            if out is not None:
                out.write(chunk)
            else:
                sys.stdout.write(chunk.decode("utf-8", errors="replace"))
    sys.stdout.flush()
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    client, key = _resolve(args.url)
    meta = client.info(key, strict=False)
    data = {"url": client.url_prefix + meta.key, **meta.to_dict()}
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
    return 0


def _cmd_glob(args: argparse.Namespace) -> int:
    client, pattern = _resolve(args.pattern)
    urls = client.glob(pattern, include_url_prefix=True)
    for url in urls:
        print(url)
    if not urls:
        raise _Failed(args.pattern, "no objects match", 1)
    return 0


# ------------------------------------------------------------------ parsing
def _build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print tracebacks on errors"
    )
    parser = argparse.ArgumentParser(
        prog="manystore",
        description="List, copy, remove and inspect objects by URL (msc://profile/key, s3://bucket/key, paths).",
        epilog="exit status: 0 success, 1 operation failed, 2 usage or configuration error",
    )
    parser.add_argument("--version", action="version", version=f"manystore {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="print tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ls = sub.add_parser(
        "ls", parents=[common], add_help=False, help="list objects and directories under a URL"
    )
    ls.add_argument("--help", action="help", help="show this help message and exit")
    ls.add_argument("url", metavar="URL")
    ls.add_argument("-l", "--long", action="store_true", help="show size, modification time (UTC), name")
    ls.add_argument("-r", "--recursive", action="store_true", help="list every object under URL")
    ls.add_argument("-h", "--human-readable", action="store_true", help="sizes like 1.5K, 20M")
    ls.set_defaults(func=_cmd_ls)

    cp = sub.add_parser("cp", parents=[common], help="copy an object, or a prefix with -r")
    cp.add_argument("src", metavar="SRC")
    cp.add_argument("dst", metavar="DST")
    cp.add_argument("-r", "--recursive", action="store_true", help="copy every object under SRC")
    cp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cp.add_argument("--progress", action="store_true", help="show progress even if stderr is not a terminal")
    cp.add_argument("-j", "--jobs", type=int, default=DEFAULT_JOBS, help="parallel copies for -r (16)")
    cp.set_defaults(func=_cmd_cp)

    rm = sub.add_parser("rm", parents=[common], help="delete an object, or a prefix with -r")
    rm.add_argument("url", metavar="URL")
    rm.add_argument("-r", "--recursive", action="store_true", help="delete everything under URL")
    rm.set_defaults(func=_cmd_rm)

    cat = sub.add_parser("cat", parents=[common], help="write an object's bytes to stdout")
    cat.add_argument("url", metavar="URL")
    cat.set_defaults(func=_cmd_cat)

    info = sub.add_parser("info", parents=[common], help="print an object's metadata as JSON")
    info.add_argument("url", metavar="URL")
    info.set_defaults(func=_cmd_info)

    glob = sub.add_parser("glob", parents=[common], help="print the URLs matching a pattern")
    glob.add_argument("pattern", metavar="PATTERN", help="e.g. 'msc://profile/data/**/*.tar'")
    glob.set_defaults(func=_cmd_glob)

    from .config import register as _register_config

    _register_config(sub, common)
    from .manifest import register as _register_manifest

    _register_manifest(sub, common)
    from .sync import register as _register_sync

    _register_sync(sub, common)
    return parser


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("MANYSTORE_DEBUG", "") not in ("", "0")


def _target_url(args: argparse.Namespace) -> str | None:
    for name in ("url", "src", "pattern", "file"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            return value
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``manystore`` command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 success, 1 operation failure, 2 usage or configuration error.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    command = args.command
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"manystore: {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `manystore cat URL | head`: quiet the interpreter's final flush
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 1
    except _Failed as exc:
        if _debug(args) and isinstance(exc.cause, BaseException):
            traceback.print_exception(exc.cause)
        _report(command, exc.url, exc.cause)
        return exc.code if exc.code is not None else _exit_code(exc.cause)
    except Exception as exc:
        if _debug(args):
            traceback.print_exc()
        url = _target_url(args)
        _report(command, url, exc)
        return _exit_code(exc)
