"""Lenses: views of one sample type as another (atdata's ``@lens``, ``Lens``, ``LensNetwork``).

A lens has a getter ``S -> V`` and an optional putter ``(V, S) -> S`` that writes a
changed view back into its source. ``@lens`` registers the getter in the process-wide
:class:`LensNetwork`; :func:`find_lens` (``LensNetwork().transform``) finds one from a
source type to a view type: a registered lens, a chain of registered lenses (shortest
first), the identity, or the built-in lens from :class:`~manystore.samples.DictSample`
to any packable type (fields taken by name and type-checked; extra fields ignored).

Example:
    >>> @lens
    ... def gray(s: Color) -> Gray:
    ...     return Gray(image=s.image.mean(axis=0))
    >>> @gray.putter
    ... def gray_put(view: Gray, source: Color) -> Color:
    ...     return Color(image=np.broadcast_to(view.image, source.image.shape).copy())
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import typing
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import LensNotFoundError

if TYPE_CHECKING:  # imported on use: ``import manystore.samples`` loads this module, not numpy
    from .sample import DictSample

__all__ = ["Lens", "LensNetwork", "find_lens", "lens", "register_lens", "view_as"]

_S = TypeVar("_S")
_V = TypeVar("_V")
_W = TypeVar("_W")


def _caller_locals(depth: int) -> dict[str, Any]:
    """Locals of a caller's frame: resolves string annotations of classes defined in a function."""
    try:
        return dict(sys._getframe(depth + 1).f_locals)
    except (AttributeError, ValueError):  # pragma: no cover - no frame introspection
        return {}


def _annotations(
    fn: Callable[..., Any], want: int, role: str, localns: dict[str, Any] | None = None
) -> tuple[list[Any], Any]:
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != want:
        raise ValueError(
            f"a lens {role} takes exactly {want} parameter(s), {fn.__qualname__} takes {len(params)}"
        )
    try:
        hints = typing.get_type_hints(fn, localns=localns)
    except Exception as exc:
        raise TypeError(f"cannot resolve the annotations of lens {role} {fn.__qualname__}: {exc}") from exc
    types_ = [hints.get(p.name) for p in params]
    ret = hints.get("return")
    for t, label in [*((t, p.name) for t, p in zip(types_, params, strict=True)), (ret, "return")]:
        if not isinstance(t, type):
            raise TypeError(
                f"lens {role} {fn.__qualname__}: annotate {label!r} with a sample class, got {t!r}"
            )
    return types_, ret


class Lens(Generic[_S, _V]):
    """A getter ``S -> V`` with an optional putter ``(V, S) -> S``.

    Args:
        get: The getter; its one parameter is annotated with the source type and its
            return with the view type.
        put: The putter (``view, source -> new source``); default: the source unchanged.
        source_type: The source type, if ``get`` is not annotated.
        view_type: The view type, if ``get`` is not annotated.

    Raises:
        ValueError: The getter does not take exactly one parameter.
        TypeError: A missing or non-class annotation.
    """

    def __init__(
        self,
        get: Callable[[_S], _V],
        put: Callable[[_V, _S], _S] | None = None,
        *,
        source_type: type[_S] | None = None,
        view_type: type[_V] | None = None,
        _localns: dict[str, Any] | None = None,
    ) -> None:
        if source_type is None or view_type is None:
            localns = _localns if _localns is not None else _caller_locals(1)
            (src,), view = _annotations(get, 1, "getter", localns)
            source_type = source_type or src
            view_type = view_type or view
        functools.update_wrapper(self, get)
        self.source_type: type[_S] = source_type
        self.view_type: type[_V] = view_type
        self._get = get
        self._put: Callable[[_V, _S], _S] | None = put

    def putter(self, put: Callable[[_V, _S], _S]) -> Callable[[_V, _S], _S]:
        """Decorator: set the putter (``def p(view: V, source: S) -> S``).

        Raises:
            ValueError: ``put`` does not take exactly two parameters.
            TypeError: Its annotations disagree with the lens's types.
        """
        (view_t, source_t), ret = _annotations(put, 2, "putter", _caller_locals(1))
        if (view_t, source_t, ret) != (self.view_type, self.source_type, self.source_type):
            raise TypeError(
                f"putter {put.__qualname__} must be ({self.view_type.__qualname__}, "
                f"{self.source_type.__qualname__}) -> {self.source_type.__qualname__}"
            )
        self._put = put
        return put

    @property
    def has_putter(self) -> bool:
        """Whether a putter was set."""
        return self._put is not None

    def get(self, s: _S) -> _V:
        """The view of ``s`` (checked to be a ``view_type``).

        Raises:
            TypeError: ``s`` is not a ``source_type``, or the getter returned another type.
        """
        if not isinstance(s, self.source_type):
            raise TypeError(
                f"lens {self.__name__}: expected a {self.source_type.__qualname__}, got {type(s).__qualname__}"
            )
        out = self._get(s)
        if not isinstance(out, self.view_type):
            raise TypeError(
                f"lens {self.__name__}: getter returned {type(out).__qualname__}, "
                f"expected {self.view_type.__qualname__}"
            )
        return out

    __call__ = get

    def put(self, v: _V, s: _S) -> _S:
        """Write view ``v`` back into source ``s``; without a putter, ``s`` unchanged."""
        return s if self._put is None else self._put(v, s)

    def __or__(self, other: Lens[_V, _W]) -> Lens[_S, _W]:
        """``self | other``: this lens, then ``other``."""
        if not isinstance(other, Lens):
            return NotImplemented
        if not issubclass(self.view_type, other.source_type):
            raise TypeError(
                f"cannot chain {self.__name__} ({self.view_type.__qualname__}) into "
                f"{other.__name__} ({other.source_type.__qualname__})"
            )
        first, second = self, other

        def get(s: _S) -> _W:
            return second.get(first.get(s))

        def put(w: _W, s: _S) -> _S:
            return first.put(second.put(w, first.get(s)), s)

        get.__name__ = get.__qualname__ = f"{self.__name__}|{other.__name__}"
        return Lens(get, put, source_type=self.source_type, view_type=other.view_type)

    def __matmul__(self, other: Lens[_W, _S]) -> Lens[_W, _V]:
        """``self @ other``: ``other``, then this lens (function composition)."""
        if not isinstance(other, Lens):
            return NotImplemented
        return other | self

    @staticmethod
    def identity(sample_type: type[_S]) -> Lens[_S, _S]:
        """The lens that returns its source (and whose putter returns the view)."""

        def same(s: _S) -> _S:
            return s

        def put(v: _S, s: _S) -> _S:
            return v

        return Lens(same, put, source_type=sample_type, view_type=sample_type)

    def __repr__(self) -> str:
        return f"Lens({self.__name__}: {self.source_type.__qualname__} -> {self.view_type.__qualname__})"

    __name__: str


def _from_dict_lens(view: type[Any]) -> Lens[DictSample, Any]:
    """DictSample -> packable ``view``: fields by name (extras ignored), type-checked."""
    from .sample import DictSample, sample_fields

    names = [f.name for f in sample_fields(view)]

    def get(d: DictSample) -> Any:
        return view.from_data({n: d[n] for n in names if n in d}, allow_pickle=d.allow_pickle)

    def put(v: Any, d: DictSample) -> DictSample:
        merged = d.to_dict()
        merged.update(v.to_data())
        return DictSample.from_data(merged, allow_pickle=d.allow_pickle)

    get.__name__ = get.__qualname__ = f"DictSample_to_{view.__qualname__}"
    return Lens(get, put, source_type=DictSample, view_type=view)


def _to_dict_lens(source: type[Any]) -> Lens[Any, DictSample]:
    """Packable ``source`` -> DictSample (its wire map); the putter decodes it back."""
    from .sample import DictSample

    def get(s: Any) -> DictSample:
        return DictSample.from_data(s.to_data())

    def put(d: DictSample, s: Any) -> Any:
        return _from_dict_lens(source).get(d)

    get.__name__ = get.__qualname__ = f"{source.__qualname__}_to_DictSample"
    return Lens(get, put, source_type=source, view_type=DictSample)


class LensNetwork:
    """The process-wide registry of lenses (one instance: ``LensNetwork()`` returns it)."""

    _instance: LensNetwork | None = None
    _registry: dict[tuple[type, type], Lens[Any, Any]]
    _lock: threading.Lock

    def __new__(cls) -> LensNetwork:
        if cls._instance is None:
            inst = super().__new__(cls)
            inst._registry = {}
            inst._lock = threading.Lock()
            cls._instance = inst
        return cls._instance

    def register(self, lens_: Lens[Any, Any]) -> Lens[Any, Any]:
        """Register ``lens_`` as the lens from its source type to its view type (replacing one)."""
        with self._lock:
            self._registry[lens_.source_type, lens_.view_type] = lens_
        return lens_

    def unregister(self, source: type, view: type) -> None:
        """Forget the registered lens from ``source`` to ``view`` (no error if there is none)."""
        with self._lock:
            self._registry.pop((source, view), None)

    def lenses(self) -> list[Lens[Any, Any]]:
        """The registered lenses."""
        with self._lock:
            return list(self._registry.values())

    def transform(self, source: type[_S], view: type[_V]) -> Lens[_S, _V]:
        """The lens from ``source`` to ``view``.

        Looks for, in order: a registered lens; the identity (same type); the built-in
        lens between DictSample and a packable type; the shortest chain of registered
        lenses.

        Raises:
            LensNotFoundError: None exists (a ``LookupError`` naming both types).
        """
        from .sample import DictSample, PackableSample

        with self._lock:
            registry = dict(self._registry)
        found = registry.get((source, view))
        if found is not None:
            return found
        if source is view:
            return Lens.identity(source)  # type: ignore[return-value]
        if source is DictSample and isinstance(view, type) and issubclass(view, PackableSample):
            return _from_dict_lens(view)  # type: ignore[return-value]
        if view is DictSample and isinstance(source, type) and issubclass(source, PackableSample):
            return _to_dict_lens(source)  # type: ignore[return-value]
        chain = self._chain(registry, source, view)
        if chain is None:
            raise LensNotFoundError(source, view, [v for (s, v) in registry if s is source])
        return chain

    @staticmethod
    def _chain(
        registry: dict[tuple[type, type], Lens[Any, Any]], source: type, view: type
    ) -> Lens[Any, Any] | None:
        edges: dict[type, list[Lens[Any, Any]]] = {}
        for (src, _), ln in registry.items():
            edges.setdefault(src, []).append(ln)
        seen = {source}
        queue: deque[tuple[type, Lens[Any, Any] | None]] = deque([(source, None)])
        while queue:
            node, path = queue.popleft()
            for ln in edges.get(node, []):
                if ln.view_type in seen:
                    continue
                step = ln if path is None else path | ln
                if ln.view_type is view:
                    return step
                seen.add(ln.view_type)
                queue.append((ln.view_type, step))
        return None


def lens(f: Callable[[_S], _V]) -> Lens[_S, _V]:
    """Decorator: make ``f`` (``def f(s: A) -> B``) a lens and register it.

    Returns:
        The :class:`Lens`; add a putter with ``@f.putter``.
    """
    made: Lens[_S, _V] = Lens(f, _localns=_caller_locals(1))
    LensNetwork().register(made)
    return made


def register_lens(lens_: Lens[Any, Any]) -> Lens[Any, Any]:
    """Register an existing :class:`Lens` (same as ``LensNetwork().register``)."""
    return LensNetwork().register(lens_)


def find_lens(source: type[_S], view: type[_V]) -> Lens[_S, _V]:
    """The lens from ``source`` to ``view`` (see :meth:`LensNetwork.transform`).

    Raises:
        LensNotFoundError: None exists.
    """
    return LensNetwork().transform(source, view)


def view_as(sample: Any, view: type[_V]) -> _V:
    """``sample`` seen as a ``view`` (through :func:`find_lens`).

    Raises:
        LensNotFoundError: No lens from the sample's type to ``view``.
        SampleTypeError: The view's fields do not match (e.g. a DictSample lacking a field).
    """
    return find_lens(type(sample), view).get(sample)
