"""Inspecting sample shards without a sample type: which shards a URL names, their sample
counts, the members of their first samples, inferred field types and short value summaries.

Used by ``manystore samples ls|schema|show`` (:mod:`manystore.samples.cli`). Counts come from
the archive layer's index (the ``<shard>.idx`` sidecar manystore writes, else a walk of the tar
headers with ranged GETs); a sample is read with one ranged GET. Nothing here unpickles: an
array's dtype and shape are read from its header, and its data only through
:func:`~manystore.samples._codec.array_from_bytes` with the caller's ``allow_pickle``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._codec import MEMBER_SUFFIX, member_key

if TYPE_CHECKING:
    import numpy as np

    from ..batch._archindex import ArchiveMember
    from ..client import StorageClient

__all__ = [
    "ArrayHeader",
    "Shard",
    "array_header",
    "describe_value",
    "expand_shard_urls",
    "infer_field_type",
    "read_samples",
    "shard_stats",
]

#: Object names that are shards (tar, or gzipped tar read by streaming).
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_NPY_MAGIC = b"\x93NUMPY"
_STR_MAX = 80
_BYTES_MAX = 24
_REPR_MAX = 100


@dataclass
class Shard:
    """One shard a command-line URL names."""

    url: str
    client: StorageClient
    key: str


def _is_shard(key: str) -> bool:
    return key.lower().endswith(SHARD_SUFFIXES)


def expand_shard_urls(url: str) -> tuple[list[Shard], bool]:
    """The shards ``url`` names, and whether it was a pattern (brace or prefix) rather than one shard.

    ``url`` is one shard (``.../train-000000.tar``), a brace pattern
    (``msc://p/train-{000000..000009}.tar``: every name it expands to, existing or not), or a
    prefix: the shards under the directory ``url/``, else the shards whose keys start with it
    (``msc://p/train-``). Shards are ``.tar``, ``.tar.gz`` and ``.tgz`` objects.

    Raises:
        ValueError: A malformed brace pattern (the message names the part).
        FileNotFoundError: A prefix with no shards under it.
    """
    from ..shortcuts import resolve_storage_client

    if "{" in url or "}" in url:
        from ..batch.templates import expand_template

        shards = []
        for name in expand_template(url):
            client, key = resolve_storage_client(name)
            shards.append(Shard(name, client, key))
        return shards, True
    client, key = resolve_storage_client(url)
    if _is_shard(key):
        return [Shard(url, client, key)], False
    base = client.url_prefix
    stripped = key.strip("/")
    for prefix in [stripped + "/", stripped] if stripped else [""]:
        keys = [m.key for m in client.list(prefix) if _is_shard(m.key)]
        if keys:
            return [Shard(base + k, client, k) for k in keys], True
    err = FileNotFoundError(f"{url}: no shards ({', '.join(SHARD_SUFFIXES)} objects) at or under it")
    err.reason = f"no shards ({', '.join(SHARD_SUFFIXES)} objects) at or under it"  # type: ignore[attr-defined]
    raise err


def _members(shard: Shard) -> tuple[list[ArchiveMember], int, str]:
    """``(members, object size, how they were found)``: ``sidecar``, ``scan`` or ``stream``."""
    from ..batch.archive import archive_format, archive_index, list_archive

    if archive_format(shard.key) == "tar.gz":
        size = shard.client.info(shard.key).content_length
        return list_archive(shard.client, shard.key), size, "stream"
    index = archive_index(shard.client, shard.key, fresh=True)
    return list(index.members), index.size, index.source


def shard_stats(shard: Shard) -> dict[str, Any]:
    """``{"url", "samples", "members", "bytes", "index"}`` of a shard (samples: ``.msgpack`` members).

    Raises:
        FileNotFoundError: No object at the shard's URL.
        ValueError: Not a valid tar.
    """
    members, size, source = _members(shard)
    samples = sum(1 for m in members if m.name.endswith(MEMBER_SUFFIX))
    return {"url": shard.url, "samples": samples, "members": len(members), "bytes": size, "index": source}


def read_samples(shard: Shard, limit: int) -> Iterator[tuple[str, str, bytes]]:
    """``(key, member name, msgpack bytes)`` of the first ``limit`` samples of ``shard``.

    A tar's samples are read with one ranged GET each (the index says where); a tar.gz is
    streamed from its start.
    """
    from ..batch.archive import ArchiveConfig, archive_format, iter_members, read_member

    if limit <= 0:
        return
    if archive_format(shard.key) == "tar.gz":
        config = ArchiveConfig(regex=MEMBER_SUFFIX, mode="suffix")
        for count, (member, data) in enumerate(iter_members(shard.client, shard.key, config=config), 1):
            yield str(member_key(member.name)), member.name, data
            if count >= limit:
                return
        return
    members, _, _ = _members(shard)
    names = [m.name for m in members if m.name.endswith(MEMBER_SUFFIX)][:limit]
    for name in names:
        yield str(member_key(name)), name, read_member(shard.client, shard.key, name)


# ------------------------------------------------------------------ arrays from their headers
@dataclass(frozen=True)
class ArrayHeader:
    """What an array field's bytes hold, read from the header alone."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    form: str  # "npy" or "compact"

    @property
    def pickled(self) -> bool:
        """True for an object-dtype array (its data is a pickle)."""
        return bool(self.dtype.hasobject)

    def label(self) -> str:
        """``uint8[3, 64, 64]``."""
        return f"{_dtype_name(self.dtype)}[{', '.join(map(str, self.shape))}]"


def _dtype_name(dtype: np.dtype[Any]) -> str:
    """``uint8``, ``U2``, ``S5``, ``datetime64[ns]``, ``object``; a structured dtype as numpy prints it."""
    if dtype.names:
        return str(dtype)
    if dtype.hasobject:
        return "object"
    if dtype.kind in "US":
        return dtype.str.lstrip("<>|=")
    return dtype.name


def array_header(b: bytes) -> ArrayHeader | None:
    """The dtype and shape of array bytes (``.npy`` or atdata 0.7's compact form), or None if
    ``b`` is not one. Only the header is parsed (no data is loaded, nothing is unpickled); the
    compact form counts only when its header accounts for exactly ``len(b)`` bytes."""
    import numpy as np

    if b[:6] == _NPY_MAGIC:
        from numpy.lib import format as npformat

        f = io.BytesIO(b)
        try:
            version = npformat.read_magic(f)
            read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, _, dtype = read(f)
        except (ValueError, OSError, struct.error):
            return None
        return ArrayHeader(dtype, tuple(shape), "npy")
    if len(b) < 3 or b[0] == 0 or len(b) < 2 + b[0]:
        return None
    try:
        text = b[1 : 1 + b[0]].decode("ascii")
        if not text.isprintable():
            return None
        dtype = np.dtype(text)
    except (TypeError, ValueError, UnicodeDecodeError, SyntaxError):
        return None
    if dtype.hasobject:
        return None
    ndim = b[1 + b[0]]
    offset = 2 + b[0]
    if len(b) < offset + 8 * ndim:
        return None
    shape = struct.unpack_from(f"<{ndim}q", b, offset)
    count = 1
    for dim in shape:
        if dim < 0:
            return None
        count *= dim
    if len(b) - offset - 8 * ndim != count * dtype.itemsize:
        return None
    return ArrayHeader(dtype, tuple(shape), "compact")


# ------------------------------------------------------------------ schema inference
_PRIMITIVE = {bool: "bool", int: "int", float: "float", str: "str", bytes: "bytes"}


def infer_field_type(value: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """``(fieldType descriptor or None for a None value, extras)`` of one wire value.

    Descriptors are those of :mod:`manystore.samples.schema` records (``local#primitive``,
    ``local#ndarray`` with its dtype, ``local#array`` with the items of its first element,
    ``local#dict``); extras hold what a record has no place for (an array's ``shape`` and
    ``encoding``, ``pickled`` for an object array).
    """
    if value is None:
        return None, {}
    if isinstance(value, (bytes, bytearray)):
        header = array_header(bytes(value))
        if header is not None:
            extras: dict[str, Any] = {"shape": list(header.shape), "encoding": header.form}
            if header.pickled:
                extras["pickled"] = True
            return {"$type": "local#ndarray", "dtype": _dtype_name(header.dtype)}, extras
        return {"$type": "local#primitive", "primitive": "bytes"}, {}
    for kind, name in _PRIMITIVE.items():
        if type(value) is kind:
            return {"$type": "local#primitive", "primitive": name}, {}
    if isinstance(value, (list, tuple)):
        first = next((v for v in value if v is not None), None)
        items = infer_field_type(first)[0] if first is not None else None
        return {"$type": "local#array", **({"items": items} if items else {})}, {"length": len(value)}
    if isinstance(value, dict):
        if not value:
            return {"$type": "local#dict"}, {}
        k, v = next(iter(value.items()))
        keys, values = infer_field_type(k)[0], infer_field_type(v)[0]
        return {"$type": "local#dict", **({"keys": keys, "values": values} if keys and values else {})}, {}
    return {"$type": "local#unknown", "python": type(value).__name__}, {}


def type_label(descriptor: dict[str, Any] | None, extras: dict[str, Any] | None = None) -> str:
    """A short text form of a field type descriptor: ``uint8[3, 64, 64]``, ``list[int]``, ``str``."""
    if descriptor is None:
        return "None (type unknown)"
    kind = str(descriptor.get("$type", "")).rpartition("#")[2]
    if kind == "primitive":
        return str(descriptor.get("primitive"))
    if kind == "ndarray":
        dtype = descriptor.get("dtype", "any")
        shape = (extras or {}).get("shape")
        text = f"{dtype}[{', '.join(map(str, shape))}]" if shape is not None else f"NDArray[{dtype}]"
        return text + (" (pickled)" if (extras or {}).get("pickled") else "")
    if kind == "array":
        items = descriptor.get("items")
        return f"list[{type_label(items)}]" if items else "list"
    if kind == "dict":
        if "keys" in descriptor:
            return f"dict[{type_label(descriptor['keys'])}, {type_label(descriptor['values'])}]"
        return "dict"
    return str(descriptor.get("python", kind or "?"))


# ------------------------------------------------------------------ value summaries
def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(x: Any) -> str:
    if isinstance(x, (bool, int)) or (hasattr(x, "dtype") and x.dtype.kind in "biu"):
        return str(x.item() if hasattr(x, "item") else x)
    return f"{float(x):.4g}"


def describe_array(x: np.ndarray) -> str:
    """``uint8[3, 64, 64] min=0 max=255 mean=127.3`` (numeric arrays), else the first values."""
    import warnings

    head = f"{_dtype_name(x.dtype)}[{', '.join(map(str, x.shape))}]"
    if x.size == 0:
        return head + " (empty)"
    if x.dtype.kind in "biuf" and x.dtype.names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = x.astype("float64").mean()
            return f"{head} min={_number(x.min())} max={_number(x.max())} mean={mean:.4g}"
    return f"{head} {_cut(repr(x.ravel()[:8].tolist()), _REPR_MAX)}"


def describe_value(value: Any, *, allow_pickle: bool = False) -> str:
    """One line summarising a field value (wire or decoded): arrays with statistics, bytes
    and long strings truncated. Array bytes are decoded only with ``allow_pickle`` for an
    object array: without it, such an array is shown by its header alone."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return describe_array(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        header = array_header(raw)
        if header is not None:
            if header.pickled and not allow_pickle:
                return f"{header.label()} (pickled object array; not loaded: --allow-pickle loads it)"
            from ._codec import array_from_bytes

            return describe_array(array_from_bytes(raw, allow_pickle=allow_pickle))
        shown = repr(raw[:_BYTES_MAX]) + ("…" if len(raw) > _BYTES_MAX else "")
        return f"bytes[{len(raw)}] {shown}"
    if isinstance(value, str):
        if len(value) <= _STR_MAX:
            return repr(value)
        return f"{repr(value[:_STR_MAX])[:-1]}…' ({len(value)} chars)"
    if isinstance(value, (list, tuple, dict)):
        return f"{type(value).__name__}[{len(value)}] {_cut(repr(value), _REPR_MAX)}"
    return _cut(repr(value), _REPR_MAX)
