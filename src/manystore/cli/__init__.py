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
import sys
import traceback
from collections.abc import Sequence
from datetime import timezone
from typing import TYPE_CHECKING, Any

from ._common import (
    CHUNK_SIZE,
    STREAM_MEMORY_LIMIT,
    _debug,
    _dir_prefix,
    _exit_code,
    _Failed,
    _report,
    _resolve,
)
from .copy import register as _register_copy

if TYPE_CHECKING:
    from ..types import ObjectMetadata

__all__ = ["main"]

#: Modules of higher layers that add commands, loaded by name when the parser is built
#: (each has ``register(subparsers, common)``); they import nothing heavy at load time.
PLUGIN_COMMANDS = ("manystore.batch.cli", "manystore.batch.etl_cli", "manystore.samples.cli")


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


# ------------------------------------------------------------------ config
def _config_path(explicit: str | None) -> str | None:
    """``explicit``, or the first existing file on the config search path."""
    if explicit:
        return explicit
    from ..config import config_search_paths

    env = os.environ.get("MSC_CONFIG")
    if env and not os.path.isfile(env):
        raise _Failed(None, f"MSC_CONFIG={env!r}: no such config file", 2)
    for path in config_search_paths():
        if os.path.isfile(path):
            return os.path.abspath(path)
    return None


def _cmd_config_show(args: argparse.Namespace) -> int:
    from ..config import load_config_file, mask_secrets
    from ..errors import UnknownProfileError
    from ..schema import validate_config

    path = _config_path(None)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = load_config_file(path)
            validate_config(data)
        except Exception as exc:
            raise _Failed(path, exc, 2) from exc
    if args.profile is not None:
        profiles = data.get("profiles") or {}
        if args.profile not in profiles:
            raise _Failed(
                path,
                UnknownProfileError(
                    f"unknown profile {args.profile!r}; the config defines {sorted(profiles) or 'no profiles'}"
                ),
            )
        data = {"profiles": {args.profile: profiles[args.profile]}}
    masked = mask_secrets(data)
    where = path or "none found"
    if args.json:
        print(f"config file: {where}", file=sys.stderr)
        print(json.dumps(masked, indent=2))
    else:
        import yaml

        print(f"# config file: {where}")
        print(yaml.safe_dump(masked, sort_keys=False, default_flow_style=False).rstrip())
    return 0


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from ..config import config_errors, load_config_file

    path = _config_path(args.file)
    if path is None:
        raise _Failed(None, "no config file found; give FILE or set MSC_CONFIG", 2)
    try:
        data = load_config_file(path)
    except Exception as exc:
        raise _Failed(path, exc, 2) from exc
    profiles = sorted(data.get("profiles") or {})
    errors = config_errors(data)
    if len(errors) > 1:
        for message in errors:
            print(f"{path}: {message}", file=sys.stderr)
        raise _Failed(path, f"{len(errors)} errors (listed above)", 2)
    if errors:
        raise _Failed(path, errors[0], 2)
    print(f"OK: {len(profiles)} profile{'' if len(profiles) == 1 else 's'} ({path})")
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
    _register_copy(sub, common)

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

    config = sub.add_parser("config", help="show or validate the configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_sub.add_parser("show", parents=[common], help="print the config file found, secrets masked")
    show.add_argument("--profile", help="show only this profile")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(func=_cmd_config_show, command="config show")
    validate = config_sub.add_parser(
        "validate", parents=[common], help="check a config file and build every profile"
    )
    validate.add_argument("file", metavar="FILE", nargs="?", help="default: the config file found")
    validate.set_defaults(func=_cmd_config_validate, command="config validate")

    from .manifest import register as _register_manifest

    _register_manifest(sub, common)
    from .sync import register as _register_sync

    _register_sync(sub, common)
    import importlib

    for module in PLUGIN_COMMANDS:
        importlib.import_module(module).register(sub, common)
    return parser


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
    from .sync import normalize_argv

    parser = _build_parser()
    try:
        args = parser.parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
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
