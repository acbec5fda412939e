"""``manystore config show|validate``: print the configuration found (secrets masked) or check a
config file and build every profile in it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import _Failed

__all__ = ["register"]


def _config_path(explicit: str | None) -> str | None:
    """``explicit``, or the first existing file on the config search path."""
    if explicit:
        return explicit
    from ..config import config_search_paths

    env = os.environ.get("MSC_CONFIG")
    if env and not os.path.isfile(env):
        print(f"manystore: warning: MSC_CONFIG={env} does not exist; searching further", file=sys.stderr)
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


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``config`` command (actions ``show`` and ``validate``) to the subparsers ``sub``."""
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
