"""``manystore samples ls|schema|show`` and ``manystore index ...``: the samples layer's commands.

They are registered by the ``manystore`` command (``manystore.cli`` loads this module by name
when it builds its parser; nothing heavy is imported until a command runs) and follow its
conventions: URLs as in the Python API, exit status 0 / 1 (an operation failed: a missing
shard, a corrupt sample) / 2 (usage: a bad argument, pattern, type or index name), one-line
errors ``manystore: <command>: <value>: <cause>``.

* ``samples ls URL [--json]`` — the shards a URL names (one shard, a brace pattern such as
  ``msc://p/train-{000000..000009}.tar``, or a prefix), one line each with its sample count
  and size, then a total. Counts come from the shard's ``.idx`` sidecar when it has one,
  else from a walk of its tar headers (ranged GETs; no shard is downloaded).
* ``samples schema URL [--type module:Class] [--json]`` — the fields of the first sample
  (msgpack keys, Python types, array dtypes and shapes), or the declared schema of a packable
  class (checked against the first sample); ``--json`` prints a schema record.
* ``samples show URL [-n N] [--type module:Class] [--allow-pickle]`` — the first N samples,
  one field per line: arrays as ``uint8[3, 64, 64] min=0 max=255 mean=127.5``, bytes and
  long strings truncated. A pickled (object-dtype) array is never loaded without
  ``--allow-pickle``.

The ``index`` commands are in :mod:`manystore.samples._cli_index`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["import_sample_type", "register"]


def _fail(url: str | None, cause: BaseException | str, code: int | None = None) -> Exception:
    from ..cli._common import _Failed

    return _Failed(url, cause, code)


def import_sample_type(spec: str) -> type:
    """The packable class ``module:Class`` names (the current directory first on the path).

    Raises:
        _Failed: (exit status 2) ``spec`` is malformed, cannot be imported, or is not a
            packable dataclass.
    """
    import dataclasses
    import importlib
    import os

    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise _fail(spec, "expected module:Class naming a @packable class", 2)
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
    if not (isinstance(target, type) and dataclasses.is_dataclass(target) and hasattr(target, "from_bytes")):
        raise _fail(spec, f"expected a @packable class, got {type(target).__name__} {target!r}", 2)
    return target


def _shards(url: str) -> tuple[list[Any], bool]:
    from ._inspect import expand_shard_urls

    try:
        return expand_shard_urls(url)
    except (ValueError, TypeError) as exc:  # a bad pattern or URL: usage
        raise _fail(url, exc, 2) from exc
    except FileNotFoundError as exc:
        raise _fail(url, exc, 1) from exc


def _first_sample(url: str) -> tuple[Any, str, bytes]:
    """``(shard, member name, bytes)`` of the first sample of the first shard that has one."""
    from ._inspect import read_samples

    for shard in _shards(url)[0]:
        try:
            for _, name, data in read_samples(shard, 1):
                return shard, name, data
        except FileNotFoundError as exc:
            raise _fail(shard.url, exc, 1) from exc
    raise _fail(url, "no samples ({key}.msgpack members) in its shards", 1)


# ------------------------------------------------------------------ samples ls
#: Shards whose counts are fetched at once by ``samples ls`` (a HEAD and a sidecar GET each).
LS_WORKERS = 16


def _cmd_ls(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from ..cli._common import _report
    from ._inspect import shard_stats

    def stat(shard: Any) -> dict[str, Any] | Exception:
        try:
            return shard_stats(shard)
        except (FileNotFoundError, ValueError) as exc:
            return exc

    shards, _ = _shards(args.url)
    rows: list[dict[str, Any]] = []
    failed = 0
    with ThreadPoolExecutor(max_workers=min(LS_WORKERS, max(1, len(shards)))) as pool:
        results = list(zip(shards, pool.map(stat, shards), strict=True))  # in shard order
    for shard, row in results:
        if isinstance(row, Exception):
            failed += 1
            _report(args.command, shard.url, row)
            continue
        rows.append(row)
        if not args.json:
            print(f"{row['samples']:>10}  {row['bytes']:>12}  {row['url']}")
    total = {
        "shards": len(rows),
        "samples": sum(r["samples"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
    }
    if args.json:
        print(json.dumps({"shards": rows, "total": total, "missing": failed}, indent=2))
    else:
        plural = "" if total["shards"] == 1 else "s"
        print(f"{total['samples']:>10}  {total['bytes']:>12}  total ({total['shards']} shard{plural})")
    return 1 if failed else 0


# ------------------------------------------------------------------ samples schema
def _inferred_record(url: str) -> dict[str, Any]:
    from ._codec import unpack_map
    from ._inspect import infer_field_type
    from .errors import SampleDecodeError

    shard, member, data = _first_sample(url)
    try:
        values = unpack_map(data)
    except SampleDecodeError as exc:
        raise _fail(shard.url, f"member {member!r}: {exc}", 1) from exc
    fields = []
    for name, value in values.items():
        descriptor, extras = infer_field_type(value)
        fields.append({"name": str(name), "fieldType": descriptor, "optional": value is None, **extras})
    return {"name": "InferredSample", "fields": fields, "inferredFrom": {"url": shard.url, "member": member}}


def _declared_record(url: str, spec: str, allow_pickle: bool) -> dict[str, Any]:
    from ._codec import decode_sample
    from .errors import PickledArrayError, SampleDecodeError, SampleTypeError
    from .schema import schema_record

    sample_type = import_sample_type(spec)
    try:
        record = schema_record(sample_type)
    except (TypeError, ValueError) as exc:
        raise _fail(spec, exc, 2) from exc
    shard, member, data = _first_sample(url)
    try:
        decode_sample(sample_type, data, allow_pickle=allow_pickle, member=member)
    except PickledArrayError as exc:
        raise _fail(shard.url, f"member {member!r}: {exc} (--allow-pickle)", 1) from exc
    except (SampleTypeError, SampleDecodeError) as exc:
        raise _fail(shard.url, f"member {member!r} does not decode as {spec}: {exc}", 1) from exc
    return record


def _cmd_schema(args: argparse.Namespace) -> int:
    from ._inspect import type_label

    if args.type:
        record = _declared_record(args.url, args.type, args.allow_pickle)
    else:
        record = _inferred_record(args.url)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    if args.type:
        print(f"{record['$ref']}  (the first sample decodes as {args.type})")
    else:
        where = record["inferredFrom"]
        print(f"{where['url']}  (inferred from the first sample, {where['member']})")
    width = max((len(f["name"]) for f in record["fields"]), default=0)
    for f in record["fields"]:
        label = type_label(f["fieldType"], f)
        if f["optional"] and f["fieldType"] is not None:
            label += " | None"
        print(f"  {f['name']:<{width}}  {label}")
    return 0


# ------------------------------------------------------------------ samples show
def _cmd_show(args: argparse.Namespace) -> int:
    import dataclasses

    from ._codec import decode_sample, unpack_map
    from ._inspect import describe_value, read_samples
    from .errors import PickledArrayError, SampleDecodeError, SampleTypeError

    if args.n < 1:
        raise _fail(None, f"-n {args.n}: expected a number of samples >= 1", 2)
    sample_type = import_sample_type(args.type) if args.type else None
    left = args.n
    for shard in _shards(args.url)[0]:
        if left <= 0:
            break
        try:
            for key, member, data in read_samples(shard, left):
                try:
                    if sample_type is None:
                        fields = list(unpack_map(data).items())
                    else:
                        sample = decode_sample(
                            sample_type, data, allow_pickle=args.allow_pickle, member=member
                        )
                        fields = [(f.name, getattr(sample, f.name)) for f in dataclasses.fields(sample)]
                    lines = [(str(k), describe_value(v, allow_pickle=args.allow_pickle)) for k, v in fields]
                except PickledArrayError as exc:
                    raise _fail(shard.url, f"member {member!r}: {exc} (--allow-pickle)", 1) from exc
                except (SampleTypeError, SampleDecodeError) as exc:
                    raise _fail(shard.url, f"member {member!r}: {exc}", 1) from exc
                print(f"{shard.url}  key={key}")
                width = max((len(k) for k, _ in lines), default=0)
                for name, text in lines:
                    print(f"  {name:<{width}}  {text}")
                left -= 1
        except FileNotFoundError as exc:
            raise _fail(shard.url, exc, 1) from exc
    if left == args.n:
        raise _fail(args.url, "no samples ({key}.msgpack members) in its shards", 1)
    return 0


# ------------------------------------------------------------------ registration
def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``samples`` and ``index`` subcommands to the CLI's subparsers."""
    samples = sub.add_parser("samples", help="inspect sample shards (WebDataset tars of msgpack samples)")
    actions = samples.add_subparsers(dest="samples_command", metavar="ACTION", required=True)
    url_help = "a shard, a brace pattern (msc://p/train-{000000..000009}.tar) or a prefix"

    ls = actions.add_parser("ls", parents=[common], help="list shards with sample counts and sizes")
    ls.add_argument("url", metavar="URL", help=url_help)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_cmd_ls, command="samples ls")

    schema = actions.add_parser(
        "schema", parents=[common], help="field names and types of the first sample (or of --type)"
    )
    schema.add_argument("url", metavar="URL", help=url_help)
    schema.add_argument("--type", metavar="MODULE:CLASS", help="a @packable class: print its schema")
    schema.add_argument("--json", action="store_true", help="print the schema record as JSON")
    schema.add_argument(
        "--allow-pickle",
        action="store_true",
        help="with --type: load pickled object arrays (trusted data only)",
    )
    schema.set_defaults(func=_cmd_schema, command="samples schema")

    show = actions.add_parser("show", parents=[common], help="print the first samples")
    show.add_argument("url", metavar="URL", help=url_help)
    show.add_argument("-n", type=int, default=3, metavar="N", help="how many samples (default 3)")
    show.add_argument("--type", metavar="MODULE:CLASS", help="decode as this @packable class")
    show.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load pickled object arrays (runs code: trusted data only)",
    )
    show.set_defaults(func=_cmd_show, command="samples show")

    from ._cli_index import register_index

    register_index(sub, common)
