"""Schema records of packable sample types: JSON descriptors, references, and types rebuilt from them.

A schema record is the JSON-able description of a :func:`~manystore.samples.packable` type
that the index stores. Its shape is atdata's local schema record, so atdata users recognise
it (and atdata can read records of types it supports)::

    {
        "name": "ImageSample",
        "version": "1.0.0",
        "fields": [
            {"name": "image", "fieldType": {"$type": "local#ndarray", "dtype": "uint8"}, "optional": False},
            {"name": "label", "fieldType": {"$type": "local#primitive", "primitive": "int"}, "optional": False},
        ],
        "description": "...",
        "$ref": "local://schemas/mymodule.ImageSample@1.0.0",
        "atdataSchemaVersion": 1,
        "createdAt": "2026-01-01T00:00:00+00:00",
    }

Field kinds: ``primitive`` (``str``, ``int``, ``float``, ``bool``, ``bytes``), ``ndarray``
(``dtype`` when the annotation names one), ``array`` (a ``list`` of ``items``) and, beyond
atdata, ``dict`` (``keys`` and ``values``) for the ``dict`` fields :func:`packable` accepts.

A schema reference is ``local://schemas/{module.Name}@{version}`` (atdata 0.2's form);
``atdata://local/schema/{Name}@{version}`` (atdata 0.7's) is accepted when parsing.
:func:`decode_schema` turns a record back into a packable dataclass whose samples pack to the
same bytes as the original type's.
"""

from __future__ import annotations

import dataclasses
import json
import keyword
import threading
import types
import typing
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "SCHEMA_REF_PREFIX",
    "decode_schema",
    "make_schema_ref",
    "parse_schema_ref",
    "same_schema",
    "schema_record",
    "schema_ref",
]

#: Prefix of the schema references this package writes (atdata 0.2's ``local://schemas/``).
SCHEMA_REF_PREFIX = "local://schemas/"
#: Prefix of atdata 0.7's local schema references, accepted by :func:`parse_schema_ref`.
ATDATA_REF_PREFIX = "atdata://local/schema/"
#: The ``atdataSchemaVersion`` of the records written here.
RECORD_VERSION = 1

_KIND = "local#"
_PRIMITIVES: dict[type, str] = {str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes"}
_PRIMITIVE_TYPES: dict[str, type] = {name: kind for kind, name in _PRIMITIVES.items()}


def _check_version(version: str) -> None:
    if not isinstance(version, str) or not version or any(c in version for c in "@/ \t\n"):
        raise ValueError(
            f"schema version must be a non-empty string without '@', '/' or spaces, got {version!r}"
        )


def make_schema_ref(qualified_name: str, version: str) -> str:
    """The reference ``local://schemas/{qualified_name}@{version}``.

    Raises:
        ValueError: The version is empty or holds ``@``, ``/`` or spaces.
    """
    _check_version(version)
    return f"{SCHEMA_REF_PREFIX}{qualified_name}@{version}"


def schema_ref(sample_type: type, version: str = "1.0.0") -> str:
    """The reference of ``sample_type`` at ``version``: ``local://schemas/{module.Name}@{version}``."""
    return make_schema_ref(f"{sample_type.__module__}.{sample_type.__name__}", version)


def parse_schema_ref(ref: str) -> tuple[str, str]:
    """``(qualified name, version)`` of a ``local://schemas/...`` or ``atdata://local/schema/...`` ref.

    Raises:
        ValueError: ``ref`` has neither prefix or no ``@version``.
    """
    for prefix in (SCHEMA_REF_PREFIX, ATDATA_REF_PREFIX):
        if isinstance(ref, str) and ref.startswith(prefix):
            name, at, version = ref[len(prefix) :].rpartition("@")
            if at and name and version:
                return name, version
    raise ValueError(
        f"schema reference {ref!r} is not of the form {SCHEMA_REF_PREFIX}<module.Name>@<version> "
        f"or {ATDATA_REF_PREFIX}<Name>@<version>"
    )


# ------------------------------------------------------------------ type -> record
def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], len(rest) < len(args)
        raise TypeError(f"union type {annotation!r} is not supported in a schema; expected T or Optional[T]")
    return annotation, False


def _ndarray_dtype(annotation: Any) -> tuple[bool, str | None]:
    """``(is an array annotation, dtype name or None)``."""
    import numpy as np

    from . import sample

    if annotation is np.ndarray or annotation is getattr(sample, "NDArray", None):
        return True, None
    if typing.get_origin(annotation) is not np.ndarray and typing.get_origin(annotation) is not getattr(
        sample, "NDArray", object()
    ):
        return False, None
    for arg in typing.get_args(annotation):
        inner = (
            typing.get_args(arg)[0] if typing.get_origin(arg) is np.dtype and typing.get_args(arg) else arg
        )
        if isinstance(inner, type) and issubclass(inner, np.generic) and inner is not np.generic:
            try:
                return True, np.dtype(inner).name
            except TypeError:  # an abstract scalar type (np.integer, np.floating): no one dtype
                return True, None
    return True, None


def field_type(annotation: Any) -> dict[str, Any]:
    """The ``fieldType`` descriptor of one (non-Optional) annotation.

    Raises:
        TypeError: The annotation is not a supported field type.
    """
    if annotation in _PRIMITIVES:
        return {"$type": _KIND + "primitive", "primitive": _PRIMITIVES[annotation]}
    is_array, dtype = _ndarray_dtype(annotation)
    if is_array:
        return {"$type": _KIND + "ndarray", **({"dtype": dtype} if dtype else {})}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is list or origin is list:
        return {"$type": _KIND + "array", **({"items": field_type(args[0])} if args else {})}
    if annotation is dict or origin is dict:
        described = {"keys": field_type(args[0]), "values": field_type(args[1])} if args else {}
        return {"$type": _KIND + "dict", **described}
    raise TypeError(
        f"field type {annotation!r} is not supported in a schema; expected str, int, float, bool, bytes, "
        "NDArray, list[...] or dict[...] of those, or Optional[...] of each"
    )


def schema_record(
    sample_type: type, *, version: str = "1.0.0", description: str | None = None
) -> dict[str, Any]:
    """The schema record (a JSON-able dict) of a packable dataclass type.

    Args:
        sample_type: A :func:`~manystore.samples.packable` type (any dataclass of supported fields).
        version: The schema's version (``"1.0.0"``-style; no ``@``, ``/`` or spaces).
        description: Free text; the class docstring when omitted.

    Raises:
        TypeError: ``sample_type`` is not a dataclass, or a field's type is unsupported (named).
        ValueError: Bad ``version``.
    """
    if not (isinstance(sample_type, type) and dataclasses.is_dataclass(sample_type)):
        raise TypeError(f"publish a @packable dataclass type, got {sample_type!r}")
    ref = schema_ref(sample_type, version)
    hints = typing.get_type_hints(sample_type)
    fields = []
    for f in dataclasses.fields(sample_type):
        try:
            inner, optional = _unwrap_optional(hints.get(f.name, f.type))
            descriptor = field_type(inner)
        except TypeError as exc:
            raise TypeError(f"{sample_type.__name__}.{f.name}: {exc}") from None
        fields.append({"name": f.name, "fieldType": descriptor, "optional": optional})
    doc = description if description is not None else (sample_type.__doc__ or "")
    if doc.startswith(f"{sample_type.__name__}("):  # dataclass's generated docstring is not a description
        doc = ""
    record: dict[str, Any] = {"name": sample_type.__name__, "version": version, "fields": fields}
    if doc:
        record["description"] = doc.strip()
    record.update(
        {
            "$ref": ref,
            "atdataSchemaVersion": RECORD_VERSION,
            "createdAt": datetime.now(timezone.utc).isoformat(),
        }
    )
    return record


def same_schema(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True if two records describe the same type (name, version and fields; not dates or text)."""
    return all(a.get(k) == b.get(k) for k in ("name", "version", "fields"))


# ------------------------------------------------------------------ record -> type
_cache: dict[str, type] = {}
_cache_lock = threading.Lock()


def _python_type(descriptor: dict[str, Any], where: str) -> Any:
    if not isinstance(descriptor, dict):
        raise ValueError(f"{where}: fieldType must be an object, got {descriptor!r}")
    raw = descriptor.get("$type", "")
    kind = raw.rpartition("#")[2] if "#" in raw else descriptor.get("kind", "")
    if kind == "primitive":
        name = descriptor.get("primitive")
        if name not in _PRIMITIVE_TYPES:
            raise ValueError(
                f"{where}: primitive {name!r} is unknown; expected one of {sorted(_PRIMITIVE_TYPES)}"
            )
        return _PRIMITIVE_TYPES[name]
    if kind == "ndarray":
        import numpy as np

        from .sample import NDArray

        dtype = descriptor.get("dtype")
        if dtype is None:
            return NDArray
        alias: Any = NDArray
        try:
            return alias[np.dtype(dtype).type]
        except TypeError:
            raise ValueError(f"{where}: dtype {dtype!r} is not a numpy dtype") from None
    if kind == "array":
        items = descriptor.get("items")
        return list if not items else list[_python_type(items, where + "[]")]  # type: ignore[misc]
    if kind == "dict":
        if "keys" not in descriptor:
            return dict
        keys, values = (
            _python_type(descriptor["keys"], where + "{key}"),
            _python_type(descriptor["values"], where),
        )
        return dict[keys, values]  # type: ignore[valid-type]
    raise ValueError(
        f"{where}: field kind {kind or raw!r} cannot be decoded; expected primitive, ndarray, array or dict"
    )


def decode_schema(record: dict[str, Any]) -> type:
    """A packable dataclass generated from a schema record.

    The generated type has the record's fields, in order, with the recorded types, so its
    samples equal the original type's (same ``.packed`` bytes). One record (same reference and
    fields) always yields the same class.

    Raises:
        ValueError: The record is malformed: missing name or fields, a field name that is not a
            Python identifier, or a field kind this package cannot rebuild (atdata's ``ref``,
            ``sparse``...).
    """
    if not isinstance(record, dict):
        raise ValueError(f"a schema record is a dict, got {type(record).__name__}")
    if record.get("atdataSchemaVersion", 1) > RECORD_VERSION:
        raise ValueError(
            f"schema record version {record.get('atdataSchemaVersion')!r} is newer than the "
            f"supported {RECORD_VERSION}"
        )
    name = record.get("name")
    fields = record.get("fields")
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"schema name {name!r} is not a Python identifier")
    if not isinstance(fields, list) or not fields:
        raise ValueError(f"schema {name!r} has no fields list (got {fields!r})")
    ref = record.get("$ref") or make_schema_ref(name, str(record.get("version", "1.0.0")))
    key = json.dumps([ref, fields], sort_keys=True)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    spec: list[tuple[str, Any]] = []
    for entry in fields:
        fname = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(fname, str) or not fname.isidentifier() or keyword.iskeyword(fname):
            raise ValueError(f"schema {name!r}: field name {fname!r} is not a Python identifier")
        annotation = _python_type(entry.get("fieldType", {}), f"schema {name!r} field {fname!r}")
        spec.append((fname, annotation | None if entry.get("optional") else annotation))
    qualified = parse_schema_ref(ref)[0] if ref.startswith((SCHEMA_REF_PREFIX, ATDATA_REF_PREFIX)) else name
    module = qualified.rpartition(".")[0] or __name__
    from .sample import packable

    generated = dataclasses.make_dataclass(
        name, spec, namespace={"__doc__": record.get("description") or None}
    )
    generated.__module__ = module
    generated = packable(generated)
    with _cache_lock:
        return _cache.setdefault(key, generated)
