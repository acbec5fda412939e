"""The wire format of samples: msgpack maps, array bytes, and tar members ``{key}.msgpack``.

A sample is a msgpack map ``{field name: value}``. An array field is ``bytes``: we write
the ``.npy`` file bytes (what ``numpy.save`` writes — readable by every atdata release)
and read both that and atdata 0.7's compact form (``<B`` length of ``dtype.str``, the
dtype string, ``<B`` ndim, ``ndim`` little-endian int64 dimensions, then the raw C-order
bytes). Arrays never unpickle unless the caller passes ``allow_pickle=True``.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING, Any, Protocol

from .errors import PickledArrayError, SampleDecodeError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "MEMBER_SUFFIX",
    "array_from_bytes",
    "array_to_bytes",
    "decode_sample",
    "encode_member",
    "member_key",
    "pack_map",
    "unpack_map",
]

#: The suffix of a sample's tar member (``{key}.msgpack``).
MEMBER_SUFFIX = ".msgpack"
_NPY_MAGIC = b"\x93NUMPY"


class _Decodable(Protocol):
    @classmethod
    def from_bytes(cls, b: bytes, *, allow_pickle: bool = False) -> Any: ...


class _Packed(Protocol):
    @property
    def packed(self) -> bytes: ...


def _msgpack() -> Any:
    try:
        import msgpack
    except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
        raise ImportError("manystore.samples needs msgpack: pip install 'manystore[samples]'") from exc
    return msgpack


def pack_map(data: dict[str, Any]) -> bytes:
    """Msgpack-encode a sample's field map (``str`` as str, ``bytes`` as bin).

    Args:
        data: Field name -> wire value (arrays already turned into bytes).

    Returns:
        The msgpack bytes.
    """
    packed: bytes = _msgpack().packb(data, use_bin_type=True)
    return packed


def unpack_map(b: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode a msgpack sample map.

    Args:
        b: The msgpack bytes.

    Returns:
        Field name -> wire value.

    Raises:
        SampleDecodeError: ``b`` is not a msgpack map (truncated, corrupt or another type).
    """
    msgpack = _msgpack()
    try:
        data = msgpack.unpackb(bytes(b), raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated classes for bad input
        raise SampleDecodeError(f"corrupt msgpack sample ({len(b)} bytes): {exc}") from exc
    if not isinstance(data, dict):
        raise SampleDecodeError(f"a sample must be a msgpack map, got {type(data).__name__}")
    return data


def array_to_bytes(x: np.ndarray, *, field: str = "array") -> bytes:
    """The ``.npy`` bytes of an array (what ``numpy.save`` writes; Fortran order kept).

    Args:
        x: The array; its dtype must not be ``object``.
        field: Name used in the error message.

    Returns:
        The ``.npy`` file bytes.

    Raises:
        TypeError: ``x`` has object dtype (it would need pickling).
    """
    import numpy as np

    if x.dtype.hasobject:
        raise TypeError(
            f"{field}: an object-dtype array cannot be written (it would be pickled); "
            f"expected a numeric, bool, string or bytes dtype, got {x.dtype}"
        )
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def array_from_bytes(b: bytes | bytearray | memoryview, *, allow_pickle: bool = False) -> np.ndarray:
    """Decode array bytes: the ``.npy`` format or atdata 0.7's compact one.

    Args:
        b: The bytes.
        allow_pickle: Load object-dtype (pickled) ``.npy`` arrays. Unpickling untrusted
            data can run arbitrary code: leave this off for shards you did not write.

    Returns:
        The array (writable, owning its memory).

    Raises:
        PickledArrayError: The array is pickled and ``allow_pickle`` is false.
        SampleDecodeError: The bytes are not a valid array encoding.
    """
    import numpy as np

    raw = bytes(b)
    if raw[:6] == _NPY_MAGIC:
        try:
            return np.load(io.BytesIO(raw), allow_pickle=allow_pickle)
        except ValueError as exc:
            if not allow_pickle and "allow_pickle" in str(exc):
                raise PickledArrayError(
                    "refused to load a pickled (object-dtype) array: unpickling untrusted data can "
                    "run code; pass allow_pickle=True only for shards you trust"
                ) from exc
            raise SampleDecodeError(f"corrupt .npy array ({len(raw)} bytes): {exc}") from exc
        except Exception as exc:
            raise SampleDecodeError(f"corrupt .npy array ({len(raw)} bytes): {exc}") from exc
    return _compact_from_bytes(raw)


def _compact_from_bytes(raw: bytes) -> np.ndarray:
    import numpy as np

    if len(raw) < 2:
        raise SampleDecodeError(
            f"array bytes too short ({len(raw)} bytes): neither .npy nor the compact form"
        )
    dlen = raw[0]
    if len(raw) < 2 + dlen:
        raise SampleDecodeError(f"compact array header cut short ({len(raw)} bytes, dtype needs {dlen})")
    try:
        dtype = np.dtype(raw[1 : 1 + dlen].decode("ascii"))
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise SampleDecodeError(f"compact array has a bad dtype {raw[1 : 1 + dlen]!r}: {exc}") from exc
    if dtype.hasobject:
        raise SampleDecodeError(f"compact array has object dtype {dtype.str!r}, which has no raw encoding")
    ndim = raw[1 + dlen]
    offset = 2 + dlen
    if len(raw) < offset + 8 * ndim:
        raise SampleDecodeError(f"compact array shape cut short ({len(raw)} bytes, ndim {ndim})")
    shape = struct.unpack_from(f"<{ndim}q", raw, offset)
    offset += 8 * ndim
    count = 1
    for dim in shape:
        if dim < 0:
            raise SampleDecodeError(f"compact array has a negative dimension in shape {shape}")
        count *= dim
    if len(raw) - offset != count * dtype.itemsize:
        raise SampleDecodeError(
            f"compact array of shape {shape} and dtype {dtype.str} needs {count * dtype.itemsize} "
            f"data bytes, got {len(raw) - offset}"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape).copy()


def decode_sample(
    sample_type: type[Any], data: bytes, *, allow_pickle: bool = False, member: str | None = None
) -> Any:
    """Decode a tar member's bytes (``{key}.msgpack``) into a sample of ``sample_type``.

    Args:
        sample_type: A packable class (or :class:`~manystore.samples.DictSample`).
        data: The member's bytes.
        allow_pickle: Load pickled (object-dtype) arrays; off by default (see
            :func:`array_from_bytes`).
        member: The member's name, recorded on a :class:`SampleDecodeError`.

    Returns:
        The sample.

    Raises:
        SampleDecodeError: Corrupt payload (``.member`` set from ``member``; the caller
            sets ``.url``).
        SampleTypeError: A field does not match its annotation.
    """
    try:
        return sample_type.from_bytes(data, allow_pickle=allow_pickle)
    except SampleDecodeError as exc:
        if exc.member is None:
            exc.member = member
        raise


def member_key(name: str) -> str | None:
    """The sample key of a tar member name, or None if it is not a ``.msgpack`` member.

    Args:
        name: The member name (``"{key}.msgpack"``, possibly under a directory).

    Returns:
        The key (text before the suffix), or None.
    """
    return name[: -len(MEMBER_SUFFIX)] if name.endswith(MEMBER_SUFFIX) else None


def encode_member(sample: _Packed, key: str) -> tuple[str, bytes]:
    """The tar member of a sample: ``("{key}.msgpack", sample.packed)``.

    Args:
        sample: A packable sample (or a DictSample).
        key: The sample key; must be non-empty and contain no ``.`` or ``/`` (WebDataset
            splits a member name at the first dot of its base name).

    Returns:
        ``(member name, bytes)``.

    Raises:
        ValueError: A bad key.
    """
    if not key or "." in key or "/" in key or "\\" in key:
        raise ValueError(f"sample key must be non-empty without '.', '/' or '\\', got {key!r}")
    return key + MEMBER_SUFFIX, sample.packed
