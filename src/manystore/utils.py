"""Small pure helpers shared by the client and the providers: keys, globs, ranges, sizes."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import InvalidPathError

if TYPE_CHECKING:
    from .types import ObjectMetadata

__all__ = [
    "glob_literal_prefix",
    "glob_to_regex",
    "human_size",
    "key_before",
    "join_key",
    "match_glob",
    "normalize_key",
    "parse_size",
    "within_bounds",
]

_GLOB_CHARS = frozenset("*?[")


def normalize_key(key: str) -> str:
    """Return ``key`` with duplicate and leading slashes removed and ``.`` segments dropped.

    Raises:
        InvalidPathError: ``key`` is not a str, holds a NUL byte, or has a ``..`` segment.
    """
    if not isinstance(key, str):
        raise InvalidPathError(f"object key must be a str, got {type(key).__name__}: {key!r}")
    if (  # fast path: already normal (checked with C-level string scans)
        key and key[0] not in "/." and "//" not in key and "/." not in key and "\x00" not in key
    ):
        return key
    if "\x00" in key:
        raise InvalidPathError(f"object key {key!r} contains a NUL byte")
    trailing = key.endswith("/")
    parts = []
    for part in key.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidPathError(f"object key {key!r} contains a '..' segment; keys cannot leave base_path")
        parts.append(part)
    out = "/".join(parts)
    return out + "/" if trailing and out else out


def join_key(base: str, key: str) -> str:
    """Join a provider ``base`` (bucket/prefix or directory) and a relative ``key``.

    The key is normalised with :func:`normalize_key`; it can never climb above ``base``.
    """
    key = normalize_key(key)
    if not base:
        return key
    if not key:
        return base
    return base.rstrip("/") + "/" + key


@functools.lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob to a regex matching whole keys.

    ``*`` and ``?`` never cross ``/``; ``**`` matches any number of path segments
    (including none when written as ``**/``); ``[...]`` and ``[!...]`` are classes.
    """
    i, n = 0, len(pattern)
    out: list[str] = []
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                out.append(_class_to_regex(pattern[i + 1 : j]))
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _class_to_regex(body: str) -> str:
    """Regex for the body of a glob ``[...]`` class; every character is literal but ``-`` ranges."""
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    items: list[str] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            lo, hi = body[k], body[k + 2]
            if lo <= hi:  # a reversed range matches nothing, as in fnmatch
                items.append(f"{re.escape(lo)}-{re.escape(hi)}")
            k += 3
        else:
            items.append(re.escape(body[k]))
            k += 1
    if not items:
        return "." if negate else "(?!)"
    return "[" + ("^" if negate else "") + "".join(items) + "]"


def match_glob(pattern: str, key: str) -> bool:
    """True if ``key`` matches the glob ``pattern`` (see :func:`glob_to_regex`)."""
    return glob_to_regex(pattern).match(key) is not None


def glob_literal_prefix(pattern: str) -> str:
    """The directory part of ``pattern`` before its first wildcard, ending in ``/`` (or ``""``).

    Listing under this prefix finds every candidate match.
    """
    for i, c in enumerate(pattern):
        if c in _GLOB_CHARS:
            head = pattern[:i]
            return head[: head.rfind("/") + 1]
    return pattern


def filter_glob(pattern: str, entries: Iterable[ObjectMetadata]) -> Iterator[str]:
    """Yield the keys of ``entries`` that match ``pattern``."""
    regex = glob_to_regex(pattern)
    for entry in entries:
        if entry.type != "directory" and regex.match(entry.key):
            yield entry.key


def within_bounds(key: str, start_after: str | None, end_at: str | None) -> bool:
    """True if ``start_after < key <= end_at`` (a ``None`` bound is open)."""
    if start_after is not None and key <= start_after:
        return False
    return not (end_at is not None and key > end_at)


_SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """Parse ``"500M"``, ``"100G"``, ``"64KiB"`` or an int into bytes (binary units).

    Raises:
        ValueError: The value is not a size; the message quotes it.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"invalid size {value!r}: expected bytes as an int or a string like '500M', '100G'")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def human_size(num: float) -> str:
    """``1536`` -> ``"1.5K"``: binary units, one decimal below 10."""
    for unit in ("B", "K", "M", "G", "T"):
        if abs(num) < 1024 or unit == "T":
            if unit == "B":
                return f"{int(num)}B"
            return f"{num:.1f}{unit}" if num < 10 else f"{num:.0f}{unit}"
        num /= 1024
    return f"{num:.0f}P"  # pragma: no cover


def key_before(key: str) -> str | None:
    """A listing offset just below ``key``: no realistic key lies between it and ``key``.

    ``None`` when no such offset can be formed (the last character is a control character or
    a surrogate, or the result would start with ``/`` or contain ``//``).
    """
    code = ord(key[-1]) - 1
    if code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
        return None
    candidate = key[:-1] + chr(code) + "\U0010ffff"
    return None if candidate.startswith("/") or "//" in candidate else candidate
