"""``manystore cp SRC DST``: copy one object, a prefix (``-r``), or a stream (``-`` for stdin/stdout).

A failure is reported against the side it concerns: a missing source object names SRC, a
missing bucket or a refused key on the destination names DST.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import sys
import threading
import traceback
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, cast

from ._common import (
    CHUNK_SIZE,
    STREAM_MEMORY_LIMIT,
    _debug,
    _dir_prefix,
    _Failed,
    _is_local,
    _progress_wanted,
    _report,
    _resolve,
)

if TYPE_CHECKING:
    from ..client import StorageClient
    from ..file import PosixFile

__all__ = ["register"]

#: A single-object copy shows a progress bar from this size up.
SINGLE_PROGRESS_BYTES = 64 << 20
DEFAULT_JOBS = 16
#: The URL naming standard input (as SRC) or standard output (as DST).
STDIO = "-"


class _DestinationError(Exception):
    """A failure on the destination side of a copy (wraps ``cause``)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _on_destination(call: Callable[[], Any]) -> Any:
    """Run ``call``, tagging any failure as the destination's."""
    try:
        return call()
    except Exception as exc:
        raise _DestinationError(exc) from exc


class _Progress:
    """A thread-safe tqdm bar on stderr counting bytes and objects; a no-op when disabled."""

    def __init__(self, total_bytes: int | None, total_objects: int, enabled: bool, desc: str) -> None:
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
    progress is wanted. Otherwise the bytes are streamed through ``open``. Failures of the
    destination's calls are raised as :class:`_DestinationError`.
    """
    if src is dst:
        src.copy(src_key, dst_key)
        on_bytes(size)
        return
    if _is_local(dst):
        with _on_destination(lambda: dst.open(dst_key, "wb")) as writer:
            src.download_file(
                src_key, cast("IO[bytes]", _CountingWriter(cast("IO[bytes]", writer), on_bytes))
            )
        return
    if _is_local(src) and not granular:
        with src.open(src_key, "rb") as reader:
            local = cast("PosixFile", reader).real_path  # reader.name is the key given to open()
            _on_destination(lambda: dst.upload_file(dst_key, local))
        on_bytes(size)
        return
    with src.open(src_key, "rb", memory_load_limit=STREAM_MEMORY_LIMIT) as reader:
        _pump(reader, dst, dst_key, on_bytes)


def _pump(reader: Any, dst: StorageClient, dst_key: str, on_bytes: Callable[[int], None]) -> None:
    """Stream ``reader`` into a new object ``dst_key``; the destination's failures are tagged."""
    out = _on_destination(lambda: dst.open(dst_key, "wb"))
    try:
        while chunk := reader.read(CHUNK_SIZE):
            _on_destination(lambda: out.write(chunk))
            on_bytes(len(chunk))
    except BaseException as exc:
        out.__exit__(type(exc), exc, exc.__traceback__)  # discards the partial object
        raise
    _on_destination(out.close)


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
    except _DestinationError as exc:
        raise _Failed(args.dst, exc.cause) from exc.cause
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
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {
                pool.submit(_copy_object, src, s, dst, d, n, progress.add_bytes): (s, d) for s, d, n in jobs
            }
            for future in as_completed(futures):
                try:
                    future.result()
                    progress.object_done()
                except _DestinationError as exc:
                    failures.append((dst.url_prefix + futures[future][1], exc.cause))
                except Exception as exc:
                    failures.append((src.url_prefix + futures[future][0], exc))
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


def _cp_stdin(args: argparse.Namespace) -> int:
    """``cp - URL``: standard input becomes the object at URL (streamed, multipart when large)."""
    if args.recursive:
        raise _Failed(STDIO, "-r cannot read a tree from standard input", 2)
    dst, dst_key = _resolve(args.dst)
    if not dst_key.strip("/") or args.dst.endswith(("/", os.sep)):
        raise _Failed(args.dst, "names a directory; give the full key of the object to write from stdin", 2)
    reader = getattr(sys.stdin, "buffer", sys.stdin)
    progress = _Progress(None, 1, bool(args.progress) and not args.quiet, "stdin")
    try:
        _pump(reader, dst, dst_key, progress.add_bytes)
    except _DestinationError as exc:
        raise _Failed(args.dst, exc.cause) from exc.cause
    except Exception as exc:
        raise _Failed(STDIO, exc) from exc
    finally:
        progress.close()
    return 0


def _cp_stdout(args: argparse.Namespace) -> int:
    """``cp URL -``: the object's bytes go to standard output (as ``cat``)."""
    if args.recursive:
        raise _Failed(STDIO, "-r cannot write a tree to standard output", 2)
    src, src_key = _resolve(args.src)
    out = getattr(sys.stdout, "buffer", None)
    try:
        with src.open(src_key, "rb", memory_load_limit=STREAM_MEMORY_LIMIT) as reader:
            while chunk := reader.read(CHUNK_SIZE):
                if out is not None:
                    out.write(chunk)
                else:
                    sys.stdout.write(chunk.decode("utf-8", errors="replace"))
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise _Failed(args.src, exc) from exc
    sys.stdout.flush()
    return 0


def _cmd_cp(args: argparse.Namespace) -> int:
    if args.src == STDIO and args.dst == STDIO:
        raise _Failed(STDIO, "SRC and DST cannot both be '-'", 2)
    if args.src == STDIO:
        return _cp_stdin(args)
    if args.dst == STDIO:
        return _cp_stdout(args)
    src, src_key = _resolve(args.src)
    dst, dst_key = _resolve(args.dst)
    if args.recursive:
        return _cp_tree(args, src, src_key, dst, dst_key)
    return _cp_single(args, src, src_key, dst, dst_key)


def _jobs(value: str) -> int:
    """``-j``: a whole number >= 1."""
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {count}")
    return count


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``cp`` subcommand to the CLI's subparsers."""
    cp = sub.add_parser("cp", parents=[common], help="copy an object, a prefix with -r, '-' for stdin/stdout")
    cp.add_argument("src", metavar="SRC", help="URL or path; '-' reads standard input")
    cp.add_argument("dst", metavar="DST", help="URL or path; '-' writes to standard output")
    cp.add_argument("-r", "--recursive", action="store_true", help="copy every object under SRC")
    cp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cp.add_argument("--progress", action="store_true", help="show progress even if stderr is not a terminal")
    cp.add_argument(
        "-j", "--jobs", type=_jobs, default=DEFAULT_JOBS, metavar="N", help="parallel copies for -r (16)"
    )
    cp.set_defaults(func=_cmd_cp)
