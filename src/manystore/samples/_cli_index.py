"""``manystore index ...``: the index of datasets and schemas (:class:`~manystore.samples.Index`).

The index is ``--index PATH_OR_URL`` (before or after the action) or, without it, the
environment variable ``MANYSTORE_INDEX``: a local SQLite file, a URL of any profile
(``msc://p/index.db``; kept in the store, changed with conditional writes) or ``redis://``.

* ``index ls [--json]`` — the datasets: name, shard count, schema reference.
* ``index schemas [--json]`` — the schemas: reference, field count.
* ``index show NAME [--json]`` — one dataset's entry (schema, CID, metadata, shard URLs).
* ``index schema REF`` — one schema record, as JSON.
* ``index add NAME URL... --schema-ref REF [--metadata K=V ...]`` — add a dataset; a URL may
  be a brace pattern (stored expanded). A metadata value is JSON if it parses, else a string.
* ``index publish module:Class [--version V]`` — publish a packable class's schema; prints
  its reference.

Exit status 2 for a bad value (no index given, an index that does not exist for a reading
action, an unknown dataset name or schema reference, bad metadata, a class that is not
packable), 1 for an operation that failed (a name already used with other content, a store
error).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

__all__ = ["ENV_INDEX", "register_index"]

#: Environment variable naming the index when ``--index`` is not given.
ENV_INDEX = "MANYSTORE_INDEX"
_REDIS = ("redis://", "rediss://", "unix://")


def _fail(url: str | None, cause: BaseException | str, code: int | None = None) -> Exception:
    from ..cli._common import _Failed

    return _Failed(url, cause, code)


def _location(args: argparse.Namespace) -> str:
    location = getattr(args, "index", None) or os.environ.get(ENV_INDEX, "")
    if not location:
        raise _fail(None, f"no index: give --index PATH_OR_URL or set {ENV_INDEX}", 2)
    return str(location)


def _shown(location: str) -> str:
    """``location`` as errors print it: a ``redis://`` password (and user) masked."""
    if location.startswith(_REDIS):
        from ._redis_index import redact_url

        return redact_url(location)
    return location


def _exists(location: str) -> bool:
    if location.startswith(_REDIS):
        return True
    if "://" not in location:
        return os.path.isfile(location)
    from ..cli._common import _resolve

    client, key = _resolve(location)
    try:
        return client.info(key, strict=True).type != "directory"
    except FileNotFoundError:
        return False


def _open(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The :class:`Index` of ``--index``/``MANYSTORE_INDEX``; reading actions need it to exist."""
    from .index import Index

    location = _location(args)
    if not create and not _exists(location):
        raise _fail(location, "no index there (`manystore index publish` creates one)", 2)
    try:
        return Index(location)
    except (ValueError, TypeError, ImportError) as exc:
        raise _fail(_shown(location), exc, 2) from exc


def _unknown(value: str, exc: KeyError) -> Exception:
    return _fail(value, str(exc.args[0]) if exc.args else f"{value!r} not found", 2)


def _cmd_ls(args: argparse.Namespace) -> int:
    entries = _open(args).list_datasets()
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    width = max((len(e.name) for e in entries), default=0)
    for e in entries:
        shards = f"{len(e.data_urls)} shard{'' if len(e.data_urls) == 1 else 's'}"
        print(f"{e.name:<{width}}  {shards:>10}  {e.schema_ref}")
    return 0


def _cmd_schemas(args: argparse.Namespace) -> int:
    records = _open(args).list_schemas()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for r in records:
        n = len(r.get("fields") or [])
        print(f"{r.get('$ref')}  ({n} field{'' if n == 1 else 's'})")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    index = _open(args)
    try:
        entry = index.get_dataset(args.name)
    except KeyError as exc:
        raise _unknown(args.name, exc) from None
    if args.json:
        print(json.dumps(entry.to_dict(), indent=2))
        return 0
    print(f"name:      {entry.name}")
    print(f"schema:    {entry.schema_ref}")
    print(f"cid:       {entry.cid}")
    print(f"created:   {entry.created_at}")
    print(f"metadata:  {json.dumps(entry.metadata, sort_keys=True)}")
    print(f"shards:    {len(entry.data_urls)}")
    for url in entry.data_urls:
        print(f"  {url}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    index = _open(args)
    try:
        record = index.get_schema(args.ref)
    except KeyError as exc:
        raise _unknown(args.ref, exc) from None
    print(json.dumps(record, indent=2))
    return 0


def _metadata(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise _fail(pair, "--metadata expects KEY=VALUE (VALUE is JSON if it parses, else text)", 2)
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _expand(urls: list[str]) -> list[str]:
    from ..batch.templates import expand_template

    out: list[str] = []
    for url in urls:
        if "{" in url or "}" in url:
            try:
                out.extend(expand_template(url))
            except ValueError as exc:
                raise _fail(url, exc, 2) from exc
        else:
            out.append(url)
    return out


def _cmd_add(args: argparse.Namespace) -> int:
    from .schema import parse_schema_ref

    try:
        parse_schema_ref(args.schema_ref)
    except ValueError as exc:
        raise _fail(args.schema_ref, exc, 2) from exc
    metadata = _metadata(args.metadata)
    urls = _expand(args.urls)
    index = _open(args)
    try:
        entry = index.insert_dataset(urls, name=args.name, schema_ref=args.schema_ref, metadata=metadata)
    except KeyError as exc:
        raise _unknown(args.schema_ref, exc) from None
    except FileExistsError as exc:
        raise _fail(args.name, exc, 1) from exc
    except ValueError as exc:
        raise _fail(args.name, exc, 2) from exc
    n = len(entry.data_urls)
    print(f"added {entry.name}: {n} shard{'' if n == 1 else 's'}, schema {entry.schema_ref}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from .cli import import_sample_type

    sample_type = import_sample_type(args.type)
    index = _open(args, create=True)
    try:
        ref = index.publish_schema(sample_type, version=args.version)
    except FileExistsError as exc:
        raise _fail(args.type, exc, 1) from exc
    except (TypeError, ValueError) as exc:
        raise _fail(args.type, exc, 2) from exc
    print(ref)
    return 0


def register_index(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``index`` subcommands to the CLI's subparsers."""
    where = f"the index: a SQLite path, a URL (msc://p/index.db) or redis://; default ${ENV_INDEX}"
    index = sub.add_parser("index", help="the index of sample datasets and schemas")
    index.add_argument("--index", metavar="PATH_OR_URL", help=where)
    actions = index.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    located = argparse.ArgumentParser(add_help=False, parents=[common])
    located.add_argument("--index", metavar="PATH_OR_URL", default=argparse.SUPPRESS, help=where)

    ls = actions.add_parser("ls", parents=[located], help="list the datasets")
    ls.add_argument("--json", action="store_true", help="print the entries as JSON")
    ls.set_defaults(func=_cmd_ls, command="index ls")

    schemas = actions.add_parser("schemas", parents=[located], help="list the schemas")
    schemas.add_argument("--json", action="store_true", help="print the records as JSON")
    schemas.set_defaults(func=_cmd_schemas, command="index schemas")

    show = actions.add_parser("show", parents=[located], help="print one dataset's entry")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print the entry as JSON")
    show.set_defaults(func=_cmd_show, command="index show")

    schema = actions.add_parser("schema", parents=[located], help="print one schema record (JSON)")
    schema.add_argument("ref", metavar="REF", help="e.g. local://schemas/mymodule.Image@1.0.0")
    schema.set_defaults(func=_cmd_schema, command="index schema")

    add = actions.add_parser("add", parents=[located], help="add a dataset (shard URLs and a schema)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("urls", metavar="URL", nargs="+", help="shard URLs or brace patterns")
    add.add_argument("--schema-ref", required=True, metavar="REF", help="a schema published in the index")
    add.add_argument(
        "--metadata", action="append", metavar="K=V", help="metadata entry (repeat); V is JSON or text"
    )
    add.set_defaults(func=_cmd_add, command="index add")

    publish = actions.add_parser("publish", parents=[located], help="publish a @packable class's schema")
    publish.add_argument("type", metavar="MODULE:CLASS")
    publish.add_argument("--version", default="1.0.0", help="the schema version (default 1.0.0)")
    publish.set_defaults(func=_cmd_publish, command="index publish")
