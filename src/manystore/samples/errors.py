"""Errors of ``manystore.samples``: each subclasses the matching builtin.

* :class:`SampleTypeError` (``TypeError``): a value does not match its field's annotation
  (at construction and at decode); names the field, the expected type and the value's type.
* :class:`SampleDecodeError` (``ValueError``): a corrupt payload (bad msgpack, a bad array
  encoding); carries ``.member`` (the tar member name) and ``.url`` (the shard) when known.
* :class:`PickledArrayError` (a :class:`SampleDecodeError`): an array that needs unpickling,
  refused unless the caller passed ``allow_pickle=True``.
* :class:`LensNotFoundError` (``LookupError``): no lens from one sample type to another.
"""

from __future__ import annotations

__all__ = ["LensNotFoundError", "PickledArrayError", "SampleDecodeError", "SampleTypeError"]


class SampleTypeError(TypeError):
    """A field value does not match the field's annotated type.

    Attributes:
        sample_type: Name of the sample class.
        field: The field's name (with a path inside a container, e.g. ``tags[2]``).
        expected: The expected type, as text.
        got: The value's type name.
    """

    def __init__(self, sample_type: str, field: str, expected: str, got: str, detail: str = "") -> None:
        self.sample_type = sample_type
        self.field = field
        self.expected = expected
        self.got = got
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{sample_type}.{field}: expected {expected}, got {got}{extra}")


class SampleDecodeError(ValueError):
    """A sample's payload could not be decoded (corrupt msgpack or array bytes).

    Attributes:
        member: The tar member the payload came from (``"{key}.msgpack"``), if known.
        url: The shard URL, if the caller set it.
        reason: What was wrong.
    """

    def __init__(self, reason: str, *, member: str | None = None, url: str | None = None) -> None:
        self.reason = reason
        self.member = member
        self.url = url
        super().__init__(reason)

    def __str__(self) -> str:
        where = [f"{name}={value!r}" for name, value in (("url", self.url), ("member", self.member)) if value]
        return f"{self.reason} [{', '.join(where)}]" if where else self.reason


class PickledArrayError(SampleDecodeError):
    """An array field holds a pickled (object-dtype) array; refused unless ``allow_pickle=True``.

    Unpickling data from an untrusted shard can run arbitrary code.
    """


class LensNotFoundError(LookupError):
    """No registered lens turns one sample type into another.

    Attributes:
        source: The source type.
        view: The requested view type.
    """

    def __init__(self, source: type, view: type, available: list[type] | None = None) -> None:
        self.source = source
        self.view = view
        self.available = list(available or [])
        src, dst = getattr(source, "__name__", repr(source)), getattr(view, "__name__", repr(view))
        have = ", ".join(sorted(t.__name__ for t in self.available)) or "none"
        super().__init__(
            f"no lens from {src} to {dst} (lenses from {src} reach: {have}); "
            f"define one with @lens: def f(s: {src}) -> {dst}"
        )
