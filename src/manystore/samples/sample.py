"""Typed samples: ``@packable`` dataclasses packed as msgpack maps (atdata's wire format).

A field may be ``str``, ``int``, ``float``, ``bool``, ``bytes``, a ``list``/``dict`` of
those, a numpy array (:data:`NDArray`, any dtype and shape; ``NDArray[np.uint8]`` also
checks the dtype) or ``Optional[...]`` / ``X | None`` of each. Values are checked at
construction and at decode: a mismatch raises :class:`~manystore.samples.errors.SampleTypeError`
naming the field, the expected type and the value's type. Numpy scalars are accepted
where the matching Python type is expected (``np.int64`` for ``int``...), and an ``int``
where a ``float`` is expected; they are stored as the annotated Python type.

Arrays are written as ``.npy`` bytes and read from ``.npy`` or atdata 0.7's compact form;
they never unpickle unless ``allow_pickle=True`` (see :mod:`manystore.samples._codec`).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar, Union, runtime_checkable

import numpy as np
from numpy.typing import NDArray

if typing.TYPE_CHECKING:
    from typing_extensions import dataclass_transform
elif sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10 without typing_extensions at run time

    def dataclass_transform(**_: Any) -> Callable[[_F], _F]:
        return lambda f: f


from ._codec import array_from_bytes, array_to_bytes, pack_map, unpack_map
from .errors import SampleTypeError

__all__ = ["DictSample", "NDArray", "Packable", "PackableSample", "packable", "sample_fields"]

_T = TypeVar("_T")
_F = TypeVar("_F")
_S = TypeVar("_S", bound="PackableSample")

#: A compiled check: (value, path, allow_pickle) -> the value as stored; raises _Mismatch.
_Check = Callable[[Any, str, bool], Any]


class _Prechecked(threading.local):
    """Set by ``from_data`` around the constructor call so ``__post_init__`` skips a second check."""

    on = False


_PRECHECKED = _Prechecked()


class _Mismatch(Exception):
    def __init__(self, path: str, expected: str, value: Any, detail: str = "") -> None:
        self.path, self.expected, self.value, self.detail = path, expected, value, detail


def _type_name(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray[{value.dtype}]"
    return type(value).__name__


def _ann_name(ann: Any) -> str:
    if ann is type(None):
        return "None"
    if ann is np.ndarray or typing.get_origin(ann) is np.ndarray:
        scalar = _array_scalar(ann)
        return f"NDArray[{scalar.__name__}]" if scalar is not None else "NDArray"
    origin = typing.get_origin(ann)
    if origin is Union or origin is types.UnionType:
        return " | ".join(_ann_name(a) for a in typing.get_args(ann))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_ann_name(a) for a in typing.get_args(ann))}]"
    if isinstance(ann, type) and not typing.get_args(ann):
        return ann.__name__
    return str(ann).replace("typing.", "").replace("numpy.", "np.")


def _check_str(v: Any, path: str, ap: bool) -> Any:
    if isinstance(v, str):
        return str(v)
    raise _Mismatch(path, "str", v)


def _check_bytes(v: Any, path: str, ap: bool) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise _Mismatch(path, "bytes", v)


def _check_bool(v: Any, path: str, ap: bool) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise _Mismatch(path, "bool", v)


def _check_int(v: Any, path: str, ap: bool) -> Any:
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    raise _Mismatch(path, "int", v)


def _check_float(v: Any, path: str, ap: bool) -> Any:
    if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return float(v)
    raise _Mismatch(path, "float", v)


def _check_none(v: Any, path: str, ap: bool) -> Any:
    if v is None:
        return None
    raise _Mismatch(path, "None", v)


def _check_any(v: Any, path: str, ap: bool) -> Any:
    """Any msgpack-able value (used for bare ``list``/``dict``/``Any``)."""
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, np.generic) and not isinstance(v, np.void):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_check_any(x, f"{path}[{i}]", ap) for i, x in enumerate(v)]
    if isinstance(v, dict):
        return {_check_any(k, f"{path} key", ap): _check_any(x, f"{path}[{k!r}]", ap) for k, x in v.items()}
    raise _Mismatch(path, "a msgpack value (None, str, bytes, bool, int, float, list, dict)", v)


_SCALARS: dict[Any, _Check] = {
    str: _check_str,
    bytes: _check_bytes,
    bool: _check_bool,
    int: _check_int,
    float: _check_float,
    type(None): _check_none,
    None: _check_none,
    Any: _check_any,
    object: _check_any,
}


def _array_scalar(ann: Any) -> type | None:
    """The numpy scalar type of ``NDArray[np.uint8]``-style annotations (None: any dtype)."""
    args = typing.get_args(ann)
    if len(args) == 2:
        dargs = typing.get_args(args[1])
        if dargs and isinstance(dargs[0], type) and issubclass(dargs[0], np.generic):
            return dargs[0]
    return None


def _array_check(ann: Any) -> _Check:
    scalar = _array_scalar(ann)
    expected = _ann_name(ann)

    def check(v: Any, path: str, ap: bool) -> Any:
        if isinstance(v, (bytes, bytearray, memoryview)):
            v = array_from_bytes(v, allow_pickle=ap)
        if not isinstance(v, np.ndarray):
            raise _Mismatch(path, expected, v)
        if scalar is not None and not np.issubdtype(v.dtype, scalar):
            raise _Mismatch(path, expected, v)
        return v

    return check


def _compile(ann: Any, where: str) -> _Check:
    """Turn an annotation into a check; TypeError for an unsupported one."""
    if ann in _SCALARS:
        return _SCALARS[ann]
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if ann is np.ndarray or origin is np.ndarray:
        return _array_check(ann)
    if origin is Union or origin is types.UnionType:
        members = [_compile(a, where) for a in args]
        expected = _ann_name(ann)

        def check_union(v: Any, path: str, ap: bool) -> Any:
            for member in members:
                try:
                    return member(v, path, ap)
                except _Mismatch:
                    continue
            raise _Mismatch(path, expected, v)

        return check_union
    if ann is list or origin is list:
        item = _compile(args[0], where) if args else _check_any
        expected = _ann_name(ann)

        def check_list(v: Any, path: str, ap: bool) -> Any:
            if not isinstance(v, (list, tuple)):
                raise _Mismatch(path, expected, v)
            return [item(x, f"{path}[{i}]", ap) for i, x in enumerate(v)]

        return check_list
    if ann is dict or origin is dict:
        key = _compile(args[0], where) if args else _check_any
        val = _compile(args[1], where) if len(args) == 2 else _check_any
        expected = _ann_name(ann)

        def check_dict(v: Any, path: str, ap: bool) -> Any:
            if not isinstance(v, dict):
                raise _Mismatch(path, expected, v)
            return {key(k, f"{path} key {k!r}", ap): val(x, f"{path}[{k!r}]", ap) for k, x in v.items()}

        return check_dict
    raise TypeError(
        f"{where}: unsupported field type {_ann_name(ann)}; expected str, int, float, bool, bytes, "
        "NDArray, list[...] / dict[...] of those, or Optional[...] of each"
    )


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    annotation: Any
    check: _Check
    required: bool


def sample_fields(cls: type) -> tuple[_Field, ...]:
    """The checked fields of a packable class (resolved once, then cached on the class).

    Args:
        cls: A packable class.

    Returns:
        One entry per dataclass field, in declaration order (``.name``, ``.annotation``).

    Raises:
        TypeError: ``cls`` is not a dataclass, or a field's annotation is unsupported or
            cannot be resolved.
    """
    cached = cls.__dict__.get("_ms_fields")
    if cached is not None:
        return typing.cast("tuple[_Field, ...]", cached)
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__qualname__} is not a dataclass; decorate it with @packable")
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise TypeError(f"cannot resolve the field annotations of {cls.__qualname__}: {exc}") from exc
    fields = []
    for f in dataclasses.fields(cls):
        ann = hints.get(f.name, f.type)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        fields.append(_Field(f.name, ann, _compile(ann, f"{cls.__qualname__}.{f.name}"), required and f.init))
    result = tuple(fields)
    type.__setattr__(cls, "_ms_fields", result)
    return result


def _checked(cls: type, name: str, check: _Check, value: Any, allow_pickle: bool) -> Any:
    try:
        return check(value, name, allow_pickle)
    except _Mismatch as m:
        raise SampleTypeError(cls.__qualname__, m.path, m.expected, _type_name(m.value), m.detail) from None


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        )
    return bool(a == b)


@runtime_checkable
class Packable(Protocol):
    """What every sample type offers (PackableSample subclasses and :class:`DictSample`)."""

    @property
    def packed(self) -> bytes:
        """The msgpack bytes."""
        ...

    @property
    def as_wds(self) -> dict[str, Any]:
        """``{"__key__": key, "msgpack": packed}``."""
        ...


class PackableSample:
    """Base class of packable samples (``@packable`` classes derive from it).

    Subclass it with ``@dataclasses.dataclass`` or, simpler, decorate a plain class with
    :func:`packable`. Fields are checked when a sample is built and when it is packed.
    """

    _ms_fields: ClassVar[tuple[_Field, ...] | None] = None

    def __post_init__(self) -> None:
        """Check (and normalise) every field against its annotation."""
        if _PRECHECKED.on:  # built by from_data, which checked every value already
            _PRECHECKED.on = False
            return
        cls = type(self)
        for f in sample_fields(cls):
            value = getattr(self, f.name)
            stored = _checked(cls, f.name, f.check, value, False)
            if stored is not value:
                object.__setattr__(self, f.name, stored)

    @classmethod
    def from_data(cls: type[_S], data: Mapping[str, Any], *, allow_pickle: bool = False) -> _S:
        """Build a sample from a decoded msgpack map (array fields may be bytes).

        Args:
            data: Field name -> value.
            allow_pickle: Load pickled (object-dtype) ``.npy`` arrays; off by default
                because unpickling untrusted data can run code.

        Returns:
            The sample.

        Raises:
            SampleTypeError: An unknown or missing field, or a value of the wrong type.
            SampleDecodeError: An array field's bytes are corrupt or pickled.
        """
        if not isinstance(data, Mapping):
            raise SampleTypeError(cls.__qualname__, "<sample>", "a map of field values", _type_name(data))
        fields = sample_fields(cls)
        known = {f.name: f for f in fields}
        names = ", ".join(known)
        for name in data:
            if name not in known:
                raise SampleTypeError(
                    cls.__qualname__,
                    str(name),
                    f"one of the fields ({names})",
                    _type_name(data[name]),
                    "unknown field",
                )
        kwargs: dict[str, Any] = {}
        for f in fields:
            if f.name in data:
                kwargs[f.name] = _checked(cls, f.name, f.check, data[f.name], allow_pickle)
            elif f.required:
                raise SampleTypeError(
                    cls.__qualname__, f.name, _ann_name(f.annotation), "nothing", "missing field"
                )
        _PRECHECKED.on = True
        try:
            return cls(**kwargs)
        finally:
            _PRECHECKED.on = False

    @classmethod
    def from_bytes(cls: type[_S], b: bytes | bytearray | memoryview, *, allow_pickle: bool = False) -> _S:
        """Decode a sample from its msgpack bytes.

        Args:
            b: The msgpack map (atdata's wire format).
            allow_pickle: Load pickled (object-dtype) arrays; off by default.

        Returns:
            The sample.

        Raises:
            SampleDecodeError: Corrupt bytes (or a pickled array without ``allow_pickle``).
            SampleTypeError: A field does not match its annotation.
        """
        return cls.from_data(unpack_map(b), allow_pickle=allow_pickle)

    def to_data(self) -> dict[str, Any]:
        """The wire map: field name -> value, arrays as ``.npy`` bytes (fields checked again).

        Raises:
            SampleTypeError: A field was set to a value of the wrong type since construction,
                or an array has object dtype (it would need pickling).
        """
        cls = type(self)
        out: dict[str, Any] = {}
        for f in sample_fields(cls):
            value = _checked(cls, f.name, f.check, getattr(self, f.name), False)
            if isinstance(value, np.ndarray):
                if value.dtype.hasobject:
                    raise SampleTypeError(
                        cls.__qualname__,
                        f.name,
                        "an array of a non-object dtype",
                        _type_name(value),
                        "it would be pickled",
                    )
                value = array_to_bytes(value, field=f"{cls.__qualname__}.{f.name}")
            out[f.name] = value
        return out

    @property
    def packed(self) -> bytes:
        """The sample as msgpack bytes (arrays as ``.npy`` bytes)."""
        return pack_map(self.to_data())

    @property
    def as_wds(self) -> dict[str, Any]:
        """The sample as a WebDataset dict: ``{"__key__": <random key>, "msgpack": packed}``."""
        return {"__key__": uuid.uuid4().hex, "msgpack": self.packed}

    def __eq__(self, other: object) -> bool:
        """Field-by-field equality (arrays by dtype, shape and values, NaNs equal).

        Two samples of different packable classes with the same field names and values are
        equal (a type generated from a published schema equals the original).
        """
        if not isinstance(other, PackableSample):
            return NotImplemented
        mine, theirs = sample_fields(type(self)), sample_fields(type(other))
        if [f.name for f in mine] != [f.name for f in theirs]:
            return False
        return all(_values_equal(getattr(self, f.name), getattr(other, f.name)) for f in mine)

    __hash__ = None  # type: ignore[assignment]


@dataclass_transform()
def packable(cls: type[_T]) -> type[_T]:
    """Make a class a packable sample: a dataclass deriving from :class:`PackableSample`.

    Args:
        cls: A class with annotated fields (optionally already a dataclass).

    Returns:
        The packable class (a subclass of ``cls``, with the same name and module).

    Raises:
        TypeError: A field's annotation is unsupported.

    Example:
        >>> @packable
        ... class Image:
        ...     image: NDArray
        ...     label: int
    """
    if issubclass(cls, PackableSample):
        if "__dataclass_fields__" not in cls.__dict__:
            cls = dataclasses.dataclass(cls, eq=False)
        _resolve_early(cls)
        return cls
    if "__dataclass_fields__" not in cls.__dict__:
        cls = dataclasses.dataclass(cls)
    user_post = getattr(cls, "__post_init__", None)
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__eq__": PackableSample.__eq__,
        "__hash__": None,
    }
    if user_post is not None:

        def __post_init__(self: Any) -> None:
            PackableSample.__post_init__(self)
            user_post(self)

        namespace["__post_init__"] = __post_init__
    made = type(cls.__name__, (cls, PackableSample), namespace)
    # Regenerate __init__ (it must call __post_init__) and __repr__; keep our __eq__.
    params = getattr(cls, "__dataclass_params__", None)
    made = dataclasses.dataclass(made, eq=False, frozen=bool(getattr(params, "frozen", False)))
    _resolve_early(made)
    return typing.cast("type[_T]", made)


def _resolve_early(cls: type) -> None:
    """Check the annotations now; leave forward references to the first sample."""
    try:
        typing.get_type_hints(cls)
    except NameError:
        return
    sample_fields(cls)


class DictSample:
    """A schema-free sample: the raw msgpack map, with attribute and item access.

    Array fields stay bytes (decode them with a typed class: there is a lens from
    ``DictSample`` to every packable type). ``allow_pickle`` given at decode is kept and
    used when the sample is turned into a typed one.
    """

    __slots__ = ("_allow_pickle", "_data")

    def __init__(self, _data: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Build from a map or keyword arguments.

        Args:
            _data: Field name -> value (if given, ``kwargs`` must be empty).
            **kwargs: Field values.

        Raises:
            TypeError: Both ``_data`` and keyword arguments were given.
        """
        if _data is not None and kwargs:
            raise TypeError("DictSample takes a map or keyword fields, not both")
        object.__setattr__(self, "_data", dict(_data) if _data is not None else kwargs)
        object.__setattr__(self, "_allow_pickle", False)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, allow_pickle: bool = False) -> DictSample:
        """Wrap a decoded msgpack map.

        Args:
            data: Field name -> wire value.
            allow_pickle: Kept for the conversion to a typed sample (pickled arrays).

        Returns:
            The sample.
        """
        sample = cls(data)
        object.__setattr__(sample, "_allow_pickle", allow_pickle)
        return sample

    @classmethod
    def from_bytes(cls, b: bytes | bytearray | memoryview, *, allow_pickle: bool = False) -> DictSample:
        """Decode msgpack bytes.

        Args:
            b: The msgpack map.
            allow_pickle: Kept for the conversion to a typed sample.

        Returns:
            The sample.

        Raises:
            SampleDecodeError: Corrupt bytes.
        """
        return cls.from_data(unpack_map(b), allow_pickle=allow_pickle)

    @property
    def allow_pickle(self) -> bool:
        """Whether the conversion to a typed sample may unpickle arrays."""
        return bool(self._allow_pickle)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"DictSample has no field {name!r}; fields: {sorted(map(str, self._data))}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DictSample):
            return NotImplemented
        return self._data.keys() == other._data.keys() and all(
            _values_equal(v, other._data[k]) for k, v in self._data.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        # Explicit: the default protocol would call __setattr__ (a field write) before _data exists.
        return (_rebuild_dict_sample, (self._data, self._allow_pickle))

    def keys(self) -> list[str]:
        """The field names."""
        return list(self._data)

    def values(self) -> list[Any]:
        """The field values."""
        return list(self._data.values())

    def items(self) -> list[tuple[str, Any]]:
        """``(name, value)`` pairs."""
        return list(self._data.items())

    def get(self, key: str, default: Any = None) -> Any:
        """A field's value, or ``default``."""
        return self._data.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """A copy of the field map."""
        return dict(self._data)

    def to_data(self) -> dict[str, Any]:
        """The wire map (arrays as ``.npy`` bytes, numpy scalars as Python values).

        Raises:
            SampleTypeError: A value msgpack cannot carry.
        """
        out: dict[str, Any] = {}
        for k, v in self._data.items():
            if isinstance(v, np.ndarray):
                out[k] = array_to_bytes(v, field=f"DictSample.{k}")
            else:
                out[k] = _checked(DictSample, str(k), _check_any, v, False)
        return out

    @property
    def packed(self) -> bytes:
        """The msgpack bytes."""
        return pack_map(self.to_data())

    @property
    def as_wds(self) -> dict[str, Any]:
        """``{"__key__": <random key>, "msgpack": packed}``."""
        return {"__key__": uuid.uuid4().hex, "msgpack": self.packed}

    def __repr__(self) -> str:
        return f"DictSample({', '.join(f'{k}=...' for k in self._data)})"


def _rebuild_dict_sample(data: dict[str, Any], allow_pickle: bool) -> DictSample:
    return DictSample.from_data(data, allow_pickle=allow_pickle)
