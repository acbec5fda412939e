"""``manystore etl run TRANSFORM SRC DST`` and ``manystore etl ls``: bulk ETL from the command line.

Registered by the ``manystore`` command as :mod:`manystore.batch.cli` is (``PLUGIN_COMMANDS``),
with the same conventions: exit status 0 / 1 (some objects failed; each is printed with its
cause) / 2 (usage), one-line errors, a progress bar of the job on stderr (``-q`` hides it,
``--progress`` forces it).

* ``etl run TRANSFORM SRC DST [NAME ...] [--template T]`` — :meth:`Bucket.transform` (every
  object under the prefix SRC, ``--prefix-filter``) or, with NAMEs or ``--template``,
  :meth:`ObjectGroup.transform`, into the prefix DST. TRANSFORM is ``module:function`` or
  ``module:Class`` (imported, the current directory first on the path, and registered under
  ``--name`` or a name derived from it), or the name of an ETL registered on this machine.
  A rerun skips outputs that are current (``--force`` redoes them).
* ``etl ls`` — the ETLs registered on this machine: name, kind, stage, ``module:qualname``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from .cli import add_progress, bucket_url, watch_job

if TYPE_CHECKING:
    from .client import Client
    from .etl import Registration

__all__ = ["derive_name", "register"]

_EXPECTED = "expected module:function, module:Class (an ETLServer subclass) or a registered ETL name"


def _fail(url: str | None, cause: BaseException | str, code: int | None = None) -> Exception:
    from ..cli._common import _Failed

    return _Failed(url, cause, code)


def derive_name(target: Any) -> str:
    """The ETL name ``etl run`` registers ``target`` under when no ``--name`` is given.

    The function's or class's name in lower case, words joined by ``-`` (``upper_case`` →
    ``upper-case``, ``ResizeImage`` → ``resize-image``); ``-etl`` is appended to names shorter
    than 6 characters and the result is cut at 32, as AIS requires.
    """
    raw = str(getattr(target, "__name__", "") or "transform")
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", raw).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", words).strip("-") or "transform"
    while len(slug) < 6:
        slug += "-etl"
    return slug[:32].rstrip("-")


def _import(spec: str) -> Any:
    """The object ``module:qualname`` names (usage errors name ``spec``)."""
    import importlib

    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise _fail(spec, _EXPECTED, 2)
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # as `python -m` does: local modules first
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise _fail(spec, f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}", 2) from exc
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _fail(spec, f"module {module_name!r} has no attribute {qualname!r}", 2) from None
    return target


def _resolve(client: Client, spec: str, name: str | None, streaming: bool) -> str:
    """Register ``spec`` (``module:attr``) or check it is a registered ETL; returns its name."""
    from .etl import lookup

    if ":" not in spec:
        if name is not None or streaming:
            raise _fail(spec, "--name and --streaming apply to a module:function TRANSFORM", 2)
        try:
            lookup(spec, client._jobs_location)
        except LookupError:
            raise _fail(spec, f"no ETL registered under this name; {_EXPECTED}", 2) from None
        except (RuntimeError, ImportError, AttributeError) as exc:
            raise _fail(spec, exc, 2) from exc
        return spec
    target = _import(spec)
    etl_name = name or derive_name(target)
    try:
        etl = client.etl(etl_name)
        if isinstance(target, type):
            if streaming:
                raise _fail(spec, "--streaming applies to functions (a class defines transform_stream)", 2)
            etl.init_class()(target)
        elif callable(target):
            etl.init(target, streaming=streaming)
        else:
            raise _fail(spec, f"is a {type(target).__name__}; {_EXPECTED}", 2)
    except (TypeError, ValueError) as exc:
        raise _fail(spec, exc, 2) from exc
    return etl_name


def _ext_map(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        old, sep, new = value.partition(":")
        old, new = old.lstrip("."), new.lstrip(".")
        if not sep or not old or not new:
            raise _fail(None, f"--ext {value!r}: expected OLD:NEW, e.g. jpg:png", 2)
        out[old] = new
    return out


def _etl_args(text: str | None) -> str | dict[str, Any] | None:
    """``--args``: a JSON object is sent as the SDK sends a dict, a JSON string as that string."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise _fail(
            None, f"--args {text!r}: expected JSON, e.g. '{{\"size\": 256}}' or '\"text\"' for a string", 2
        ) from None
    if isinstance(value, (dict, str)):
        return value
    return json.dumps(value, separators=(",", ":"))


def _cmd_etl_run(args: argparse.Namespace) -> int:
    from .client import Client

    if args.template and args.names:
        raise _fail(args.src, "give NAMEs or --template, not both", 2)
    grouped = bool(args.template or args.names)
    if grouped and args.prefix_filter:
        raise _fail(
            args.src, "--prefix-filter selects from the whole prefix; not with NAMEs or --template", 2
        )
    ext, etl_args = _ext_map(args.ext), _etl_args(args.args)
    client = Client()
    etl_name = _resolve(client, args.transform, args.name, args.streaming)
    pipeline = [_resolve(client, spec, None, False) for spec in args.pipeline or []]
    try:
        src, dst = client.bucket(bucket_url(args.src)), client.bucket(bucket_url(args.dst))
    except ValueError as exc:
        raise _fail(args.src, exc, 2) from exc
    common: dict[str, Any] = {
        "timeout": args.timeout,
        "prepend": args.prepend,
        "ext": ext,
        "dry_run": args.dry_run,
        "force": args.force,
        "num_workers": args.workers,
        "etl_pipeline": pipeline or None,
        "continue_on_error": args.continue_on_error,
        "execution": "ray" if args.ray or args.ray_address is not None else "local",
        "num_worker_processes": args.processes,
        "ray_address": args.ray_address or None,
        "etl_args": etl_args,
    }
    group = None
    if grouped:
        try:
            if args.template:
                group = src.objects(obj_template=args.template)
            else:
                group = src.objects(obj_names=args.names)
        except ValueError as exc:
            raise _fail(args.src, exc, 2) from exc
    try:
        if group is not None:
            job_id = group.transform(dst, etl_name, **common)
        else:
            job_id = src.transform(etl_name, dst, prefix_filter=args.prefix_filter, **common)
    except (ValueError, TypeError, LookupError, RuntimeError) as exc:  # each names its bad value
        raise _fail(None, exc, 2) from exc
    status = watch_job(args, client.job(job_id))
    if status.total == 0:
        print(f"manystore: etl run: warning: {args.src}: no objects selected", file=sys.stderr)
    for name, cause in status.errors.items():
        where = args.dst if name == "<job>" else src._url(name)
        print(f"manystore: etl run: {where}: {cause}", file=sys.stderr)
    if status.objects_failed > len(status.errors):
        print(
            f"manystore: etl run: ... {status.objects_failed - len(status.errors)} more failures",
            file=sys.stderr,
        )
    if args.dry_run:
        for line in sorted(status.planned):
            print(line)
        skip = sum(line.startswith("skip ") for line in status.planned)
        more = (
            f" (plan of the first {len(status.planned)} shown)"
            if len(status.planned) < status.objects_done
            else ""
        )
        print(f"dry run: would transform {len(status.planned) - skip}, skip {skip} (current){more}")
        return 1 if status.objects_failed else 0
    attempted = status.objects_done + status.objects_failed
    if status.state != "done" and attempted < status.total:
        print(
            f"manystore: etl run: {args.src}: stopped at the first failure, {status.total - attempted} "
            "objects not attempted (--continue-on-error goes on)",
            file=sys.stderr,
        )
    done = status.objects_done - status.objects_skipped
    print(
        f"transformed {done} objects ({status.bytes} bytes), skipped {status.objects_skipped} (current), "
        f"failed {status.objects_failed} into {args.dst}"
    )
    return 1 if status.objects_failed or status.state != "done" else 0


def _cmd_etl_ls(args: argparse.Namespace) -> int:
    from .client import Client
    from .etl import STAGE_RUNNING, STAGE_STOPPED, lookup

    client = Client()
    for info in client.list_etls(stages=[STAGE_RUNNING, STAGE_STOPPED]):
        reg: Registration = lookup(info.id, client._jobs_location, running=False)
        kind = reg.kind + (" (stream)" if reg.streaming else "")
        print(f"{info.id:<32}  {kind:<17}  {info.stage:<7}  {info.transform}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``etl`` subcommand (``run``, ``ls``) to the CLI's subparsers."""
    etl = sub.add_parser("etl", help="apply a Python transform to many objects; list registered ETLs")
    actions = etl.add_subparsers(dest="etl_command", metavar="ACTION", required=True)

    run = actions.add_parser(
        "run", parents=[common], help="transform the objects under SRC into DST (a job; reruns skip)"
    )
    run.add_argument(
        "transform",
        metavar="TRANSFORM",
        help="module:function, module:Class (an ETLServer subclass) or a registered ETL name",
    )
    run.add_argument("src", metavar="SRC", help="URL prefix of the source objects")
    run.add_argument("dst", metavar="DST", help="URL prefix the outputs go under")
    run.add_argument("names", metavar="NAME", nargs="*", help="object names under SRC (default: all)")
    run.add_argument("--template", metavar="T", help="names by brace expansion, e.g. 'img-{0000..0999}.jpg'")
    run.add_argument("--prefix-filter", default="", metavar="P", help="only names under SRC starting with P")
    run.add_argument(
        "--ext", action="append", metavar="OLD:NEW", help="rename the outputs' extension (repeatable)"
    )
    run.add_argument("--prepend", default="", metavar="TEXT", help="put TEXT before each output's name")
    run.add_argument("--name", metavar="ETL", help="register a module:function under this name")
    run.add_argument(
        "--streaming", action="store_true", help="the function reads a binary file instead of bytes"
    )
    run.add_argument(
        "--pipeline",
        action="append",
        metavar="TRANSFORM",
        help="apply after TRANSFORM, in order (repeatable)",
    )
    run.add_argument("--args", metavar="JSON", help="arguments every transform call gets (etl_args)")
    run.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    run.add_argument("--continue-on-error", action="store_true", help="go on past failed objects (exit 1)")
    run.add_argument("--force", action="store_true", help="redo outputs that are current")
    run.add_argument("--timeout", metavar="DURATION", help="objects not started by then fail ('30m')")
    run.add_argument(
        "--workers", type=int, default=None, metavar="N", help="threads per process (default 16)"
    )
    run.add_argument("--processes", type=int, default=None, metavar="N", help="worker processes (default 1)")
    run.add_argument("--ray", action="store_true", help="run on Ray, a local instance unless --ray-address")
    run.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="run on the Ray cluster at ADDR (implies --ray; --ray=ADDR is the same)",
    )
    add_progress(run)
    run.set_defaults(func=_cmd_etl_run, command="etl run")

    ls = actions.add_parser("ls", parents=[common], help="list the ETLs registered on this machine")
    ls.set_defaults(func=_cmd_etl_ls, command="etl ls")
