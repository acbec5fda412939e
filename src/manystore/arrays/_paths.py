"""cottoncandy's object-name rules: cleaning, joining, glob magic and glob matching.

Pure string helpers shared by :mod:`.fs`, :mod:`.browser`, :mod:`.dask`, :mod:`.sparse`
and :mod:`.groups` (no I/O, no optional dependency).
"""

from __future__ import annotations

import posixpath
import re

__all__ = [
    "clean_name",
    "dir_prefix",
    "glob_regex",
    "has_magic",
    "has_real_magic",
    "magic_prefix",
    "normpath",
    "pathjoin",
    "remove_trivial_magic",
]

SEPARATOR = "/"
_MAGIC = re.compile(r"[*?[]")
_TRIVIAL = re.compile(r"[^*]*/\*$")


def clean_name(name: str) -> str:
    """``name`` with runs of ``/`` collapsed and one leading ``/`` removed, as cottoncandy does.

    Raises:
        TypeError: ``name`` is not a string.
    """
    if not isinstance(name, str):
        raise TypeError(f"object name must be a str, got {type(name).__name__} {name!r}")
    name = re.sub("//+", "/", name)
    return name[1:] if name.startswith(SEPARATOR) else name


def pathjoin(a: str, *parts: str) -> str:
    """Join name components with ``/`` (an absolute component restarts the path), as cottoncandy."""
    path = a
    for part in parts:
        if part.startswith(SEPARATOR):
            path = part
        elif path == "" or path.endswith(SEPARATOR):
            path += part
        else:
            path += SEPARATOR + part
    return path


def has_magic(pattern: str) -> bool:
    """True if ``pattern`` holds a glob character (``*``, ``?`` or ``[``)."""
    return _MAGIC.search(pattern) is not None


def has_real_magic(pattern: str) -> bool:
    """True if ``pattern`` has magic other than one trailing ``/*`` (which just means "the directory")."""
    trivial = _TRIVIAL.match(pattern) is not None and re.search(r"[?[]", pattern) is None
    return has_magic(pattern) and not trivial


def remove_trivial_magic(pattern: str) -> str:
    """``"x/*"`` becomes ``"x/"``; any other pattern is returned unchanged."""
    if has_magic(pattern) and not has_real_magic(pattern):
        return pattern[:-1]
    return pattern


def magic_prefix(pattern: str) -> str:
    """The literal text of ``pattern`` before its first glob character (a raw key prefix)."""
    return _MAGIC.split(pattern, maxsplit=1)[0]


def dir_prefix(path: str) -> str:
    """``path`` as a listing prefix of a directory: ``""`` for the root, else ending in ``/``."""
    path = clean_name(path)
    if path in ("", SEPARATOR, "."):
        return ""
    return path if path.endswith(SEPARATOR) else path + SEPARATOR


def normpath(name: str) -> str:
    """``posixpath.normpath`` without the ``"."`` it gives for an empty name."""
    return "" if name in ("", ".") else posixpath.normpath(name)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a cottoncandy glob into a regex matching whole object names.

    As in cottoncandy (which uses :mod:`fnmatch`), ``*`` and ``?`` also match ``/``, so
    ``"a/*"`` matches everything under ``a/``. ``**/`` additionally matches no
    directory at all (``"a/**/x"`` matches ``"a/x"``); ``[...]`` and ``[!...]`` are
    character classes.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append(".*")
            continue
        if c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)
