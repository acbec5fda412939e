"""``manystore manifest generate|show``: build and inspect metadata manifests.

``generate URL`` lists the objects under ``URL`` (keys stay relative to its profile) and
writes ``.msc_manifests/`` under ``--manifest-url`` (default: ``URL``). ``show URL`` prints
the index under ``URL`` (a manifest directory, or a directory holding ``.msc_manifests``)
and its first ``--limit`` entries, one JSON line each.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
from typing import Any

__all__ = ["register"]


def _dir(key: str) -> str:
    key = key.strip("/")
    return key + "/" if key else ""


def _cmd_generate(args: argparse.Namespace) -> int:
    from ..generators import collect_entries, write_manifest
    from ..providers.manifest_metadata import DEFAULT_MANIFEST_BASE_DIR
    from ..shortcuts import resolve_storage_client

    client, key = resolve_storage_client(args.url)
    manifest_client, manifest_key = resolve_storage_client(args.manifest_url or args.url)
    entries = collect_entries(client, _dir(key), args.partition_key or None)
    manifest_dir = posixpath.join(_dir(manifest_key), DEFAULT_MANIFEST_BASE_DIR)
    manifest = write_manifest(manifest_client, entries, manifest_dir)
    print(
        f"wrote {manifest_client.url_prefix}{manifest_dir}/: {len(entries)} entries in {len(manifest.parts)} part(s)"
    )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from ..providers.manifest_metadata import DEFAULT_MANIFEST_BASE_DIR, MANIFEST_INDEX_FILENAME, parse_part
    from ..shortcuts import resolve_storage_client

    client, key = resolve_storage_client(args.url)
    base = _dir(key)
    candidates = [
        base + MANIFEST_INDEX_FILENAME,
        base + DEFAULT_MANIFEST_BASE_DIR + "/" + MANIFEST_INDEX_FILENAME,
    ]
    if key.endswith(".json"):
        candidates.insert(0, key)
    index_key, raw = "", b""
    for candidate in candidates:
        try:
            raw = client.read(candidate)
        except FileNotFoundError:
            continue
        index_key = candidate
        break
    if not index_key:
        raise FileNotFoundError(
            f"{args.url}: no {MANIFEST_INDEX_FILENAME} here or in {DEFAULT_MANIFEST_BASE_DIR}/"
        )
    index: dict[str, Any] = json.loads(raw)
    print(f"index: {client.url_prefix}{index_key}")
    print(json.dumps(index, indent=2))
    remaining = args.limit
    directory = posixpath.dirname(index_key)
    for part in index.get("parts", []):
        if remaining <= 0:
            break
        for record in parse_part(client.read(posixpath.join(directory, part["path"])))[:remaining]:
            print(json.dumps(record))
            remaining -= 1
    sys.stdout.flush()
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``manifest`` command to the ``manystore`` sub-parsers ``sub``."""
    manifest = sub.add_parser("manifest", help="generate or show a metadata manifest")
    actions = manifest.add_subparsers(dest="manifest_command", metavar="ACTION", required=True)
    gen = actions.add_parser("generate", parents=[common], help="list URL and write its manifest")
    gen.add_argument("url", metavar="URL", help="the data to index (keys stay relative to its profile)")
    gen.add_argument("--manifest-url", metavar="URL2", help="write .msc_manifests/ under URL2 (default: URL)")
    gen.add_argument(
        "--partition-key",
        action="append",
        metavar="K",
        help="list key ranges split at K concurrently (repeatable)",
    )
    gen.set_defaults(func=_cmd_generate, command="manifest generate")
    show = actions.add_parser("show", parents=[common], help="print a manifest's index and first entries")
    show.add_argument(
        "url", metavar="URL", help="the manifest directory, or a directory holding .msc_manifests"
    )
    show.add_argument("--limit", type=int, default=10, metavar="N", help="entries to print (10)")
    show.set_defaults(func=_cmd_show, command="manifest show")
