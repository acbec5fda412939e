"""Instrumenting a storage provider: the one place every storage operation is measured.

:func:`instrument` gives a provider instance wrappers of its public operations, set as
attributes of the instance itself, each timing the call and appending one record to the
process's buffer (:mod:`manystore.telemetry._recorder`). The class is not changed and the
instance's ``__dict__`` is never read: either would turn CPython's compact instance
attributes into a plain dict and slow every ``self.x`` in the provider's own code.
``isinstance`` checks still hold, and a provider of a config without telemetry is never
touched, so telemetry off costs nothing. An instrumented provider pickles as its plain
class plus the instrumentation spec, and is instrumented again (with fresh state) in the
receiving process.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from . import _recorder
from ._setup import build_attributes_providers

__all__ = ["InstrumentationSpec", "instrument", "instrument_config", "is_instrumented"]

_ATTR = "_manystore_telemetry"
_perf = time.perf_counter


class InstrumentationSpec:
    """What :func:`instrument` needs; picklable (the telemetry source pickles as itself).

    Args:
        profile: The profile name (label ``multistorageclient.profile``).
        metrics_config: The validated ``opentelemetry.metrics`` section.
        config_dict: The config with secrets masked (for ``msc_config`` attributes).
        telemetry: A :class:`manystore.telemetry.Telemetry` (or proxy) to record into.
        telemetry_provider: Else a top-level function returning one; else :func:`init` ``()``.
    """

    def __init__(
        self,
        profile: str,
        metrics_config: Mapping[str, Any],
        config_dict: Mapping[str, Any],
        telemetry: Any = None,
        telemetry_provider: Callable[[], Any] | None = None,
    ) -> None:
        self.profile = profile
        self.metrics_config = dict(metrics_config)
        self.config_dict = dict(config_dict)
        self._telemetry = telemetry
        self._telemetry_provider = telemetry_provider
        #: Attribute providers given directly (else built from ``metrics_config``).
        self.attributes_providers: list[Any] | None = None
        self._resolved: tuple[int, Any] | None = None
        self._lock = threading.Lock()
        self._origin = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_resolved"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._origin = os.getpid()  # a proxy in the state was rebuilt (connected) here

    def telemetry(self) -> Any:
        """The telemetry to send records to, resolved once per process."""
        resolved = self._resolved
        pid = os.getpid()
        if resolved is not None and resolved[0] == pid:
            return resolved[1]
        with self._lock:
            target = self._telemetry
            if target is not None and getattr(target, "_token", None) is not None and self._origin != pid:
                from . import _connect  # a forked child: its own connection to the same manager

                target = _connect(target._token.address)
            elif target is None:
                from . import init

                target = (self._telemetry_provider or init)()
            self._resolved = (pid, target)
            return target


#: Every live state, so that a forked child can drop cached (per-process) attributes.
_STATES: weakref.WeakSet[_State] = weakref.WeakSet()


class _State:
    """Per-instance instrumentation state: the sink and the cached record groups.

    ``ok`` maps an operation to the group of its successful calls when the attributes do
    not vary per thread or per call, and ``slots`` holds the same group in a one-item list
    per operation (``[None]`` until known) that the wrappers read as a constant: their fast
    path. A forked child starts with empty caches (``process``-scope attributes such as the
    pid differ there).
    """

    def __init__(self, spec: InstrumentationSpec, provider_type: str) -> None:
        self.spec = spec
        self.sink = spec  # records are grouped by spec: one record_batch per spec per flush
        providers = spec.attributes_providers
        if providers is None:
            providers = build_attributes_providers(spec.metrics_config, spec.config_dict)
        self._fixed = {
            "multistorageclient.profile": spec.profile,
            "multistorageclient.provider": provider_type,
        }
        self._providers = providers
        self._per_call = any(p.scope == "call" for p in providers)
        self._per_thread = any(p.scope == "thread" for p in providers)
        self.ok: dict[str, _recorder.Group] = {}
        self.slots: dict[str, list[_recorder.Group | None]] = {}
        self._groups: dict[tuple[str, str], _recorder.Group] = {}
        self._tls = threading.local()
        _STATES.add(self)

    def _forget(self) -> None:
        self.ok, self._groups, self._tls = {}, {}, threading.local()
        for slot in self.slots.values():
            slot[0] = None

    def slot(self, op: str) -> list[_recorder.Group | None]:
        """The one-item list the wrappers of ``op`` read the group of its successes from."""
        found = self.slots.get(op)
        if found is None:
            found = self.slots[op] = [self.ok.get(op)]
        return found

    def _build(self, op: str) -> tuple[tuple[str, Any], ...]:
        attrs: dict[str, Any] = {}
        for provider in self._providers:  # config order: a later provider wins
            got = provider.attributes()
            if got:
                attrs.update(got)
        attrs.update(self._fixed)
        attrs["multistorageclient.operation"] = op
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attrs.items()))

    def attrs(self, op: str) -> tuple[tuple[str, Any], ...]:
        """The attribute items of an ``op`` record made now (in this thread)."""
        return self.group(op, "success").attrs

    def group(self, op: str, status: str) -> _recorder.Group:
        """The group of an ``op`` record with ``status`` made now (in this thread)."""
        if self._per_call:
            return _recorder.group_for(self.sink, self._build(op), status)
        cache: dict[Any, Any] = self._tls.__dict__ if self._per_thread else self._groups
        found: _recorder.Group | None = cache.get((op, status))
        if found is None:
            found = cache[(op, status)] = _recorder.group_for(self.sink, self._build(op), status)
            if status == "success" and not self._per_thread:
                self.ok[op] = found
                slot = self.slots.get(op)
                if slot is not None:
                    slot[0] = found
        return found

    def record(self, op: str, latency: float, status: str, nbytes: int | None) -> None:
        group = self.group(op, status)
        if nbytes is not None:
            group.nb.append(nbytes)  # before the latency: a flush never counts one without the other
        group.lat.append(latency)


def _after_fork_in_child() -> None:
    for state in list(_STATES):
        state._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _nbytes(value: Any) -> int | None:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    return None


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _file_size(f: Any) -> int | None:
    if isinstance(f, (str, os.PathLike)):
        try:
            return os.path.getsize(f)
        except OSError:
            return None
    try:
        return int(f.tell())
    except (AttributeError, OSError, ValueError):
        return None


_Size = Callable[[tuple[Any, ...], dict[str, Any], Any], "int | None"]


def _result_size(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> int | None:
    return len(result) if type(result) is bytes else _nbytes(result)


def _body_size(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> int | None:
    body = args[1] if len(args) > 1 else kwargs.get("body")
    return len(body) if type(body) is bytes else _nbytes(body)


def _wrap(provider: Any, base: Callable[..., Any], op: str, size: _Size | None, state: _State) -> Any:
    # The hot path (as in _TEMPLATE): the cached group from its slot, one or two deque
    # appends. Errors and per-thread/per-call attributes take _State.group/record.
    perf = _perf
    slot = state.slot(op)

    def method(*args: Any, **kwargs: Any) -> Any:
        start = perf()
        try:
            result = base(provider, *args, **kwargs)
        except BaseException as exc:
            state.record(op, perf() - start, "error." + type(exc).__name__, None)
            raise
        latency = perf() - start
        group = slot[0] or state.group(op, "success")
        if size is not None:
            nbytes = size(args, kwargs, result)  # args without self, as the size functions expect
            if nbytes is not None:
                group.nb.append(nbytes)
        group.lat.append(latency)
        return result

    return method


#: A wrapper's code: ``_ms_self`` (the provider), ``_ms_state`` (its :class:`_State`) and
#: ``_ms_slot`` (its slot for the operation) are constants of the wrapper.
_TEMPLATE = """\
def {name}({params}):
    _ms_start = _ms_perf()
    try:
        _ms_result = _ms_base({call})
    except BaseException as _ms_exc:
        _ms_state.record(_ms_op, _ms_perf() - _ms_start, "error." + type(_ms_exc).__name__, None)
        raise
    _ms_latency = _ms_perf() - _ms_start
    _ms_group = _ms_slot[0] or _ms_state.group(_ms_op, "success")
{size}    _ms_group.lat.append(_ms_latency)
    return _ms_result
"""
_SIZE_LINES = """\
    if type({0}) is bytes:
        _ms_group.nb.append(len({0}))
    else:
        _ms_n = _ms_nbytes({0})
        if _ms_n is not None:
            _ms_group.nb.append(_ms_n)
"""
#: Size functions the compiled wrappers inline: the variable holding the bytes.
_INLINE_SIZES: dict[Any, str | None] = {None: None, _result_size: "_ms_result", _body_size: "body"}


def _compile(provider: Any, base: Callable[..., Any], op: str, size: _Size | None, state: _State) -> Any:
    """A wrapper with ``base``'s own parameters but ``self`` (no ``*args``/``**kwargs``
    repacking), or None.

    Same hot path as :func:`_wrap`; None when the signature cannot be copied (then
    :func:`_wrap` is used). Defaults are passed on as the very same objects.
    """
    import inspect

    if size not in _INLINE_SIZES or not getattr(base, "__name__", "").isidentifier():
        return None
    try:
        params = list(inspect.signature(base, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        return None
    kinds = inspect.Parameter
    if not params or params[0].kind not in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
        return None
    namespace: dict[str, Any] = {
        "_ms_perf": _perf,
        "_ms_base": base,
        "_ms_op": op,
        "_ms_nbytes": _nbytes,
        "_ms_self": provider,
        "_ms_state": state,
        "_ms_slot": state.slot(op),
    }
    defs: list[str] = []
    call: list[str] = ["_ms_self"]
    star = False
    for i, p in enumerate(params):
        if p.name.startswith("_ms_"):
            return None
        if i == 0:
            continue
        text = p.name
        if p.default is not p.empty:
            namespace[f"_ms_d{i}"] = p.default
            text += f"=_ms_d{i}"
        if p.kind is kinds.VAR_POSITIONAL:
            star = True
            defs.append("*" + p.name)
            call.append("*" + p.name)
            continue
        if p.kind is kinds.VAR_KEYWORD:
            defs.append("**" + p.name)
            call.append("**" + p.name)
            continue
        if p.kind is kinds.KEYWORD_ONLY:
            if not star:
                star = True
                defs.append("*")
            call.append(f"{p.name}={p.name}")
        else:
            call.append(p.name)
        defs.append(text)
        if p.kind is kinds.POSITIONAL_ONLY and (i + 1 == len(params) or params[i + 1].kind is not p.kind):
            defs.append("/")
    var = _INLINE_SIZES[size]
    names = {p.name for p in params[1:] if p.kind not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD)}
    if var is not None and not var.startswith("_ms_") and var not in names:
        return None
    source = _TEMPLATE.format(
        name=base.__name__,
        params=", ".join(defs),
        call=", ".join(call),
        size=_SIZE_LINES.format(var) if var else "",
    )
    exec(compile(source, f"<manystore telemetry wrapper of {base.__qualname__}>", "exec"), namespace)
    return namespace[base.__name__]


def _wrap_download(provider: Any, base: Callable[..., Any], state: _State) -> Any:
    def method(*args: Any, **kwargs: Any) -> Any:
        f = _arg(args, kwargs, 1, "f")  # args: (remote_path, f, ...)
        before = None if isinstance(f, (str, os.PathLike)) else _file_size(f)
        start = _perf()
        try:
            result = base(provider, *args, **kwargs)
        except BaseException as exc:
            state.record("download", _perf() - start, "error." + type(exc).__name__, None)
            raise
        after = _file_size(f)
        nbytes = after - (before or 0) if after is not None else None
        state.record("download", _perf() - start, "success", nbytes)
        return result

    return method


def _wrap_list(provider: Any, base: Callable[..., Iterator[Any]], state: _State) -> Any:
    def method(*args: Any, **kwargs: Any) -> Iterator[Any]:
        start = _perf()
        try:
            yield from base(provider, *args, **kwargs)
        except GeneratorExit:  # the caller stopped early: the listing did not fail
            state.record("list", _perf() - start, "success", None)
            raise
        except BaseException as exc:
            state.record("list", _perf() - start, "error." + type(exc).__name__, None)
            raise
        state.record("list", _perf() - start, "success", None)

    return method


class _CountingWriter:
    """Wraps a streaming writer: one ``put`` record (bytes written, latency to close)."""

    def __init__(self, writer: Any, state: _State) -> None:
        self._writer, self._state, self._bytes, self._start = writer, state, 0, _perf()

    def write(self, data: Any) -> int:
        n = self._writer.write(data)
        self._bytes += n if isinstance(n, int) else len(memoryview(data))
        return n

    def close(self) -> None:
        try:
            self._writer.close()
        except BaseException as exc:
            self._state.record("put", _perf() - self._start, "error." + type(exc).__name__, None)
            raise
        self._state.record("put", _perf() - self._start, "success", self._bytes)

    def abort(self) -> None:
        self._writer.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


def _wrap_writer(provider: Any, base: Callable[..., Any], state: _State) -> Any:
    def method(*args: Any, **kwargs: Any) -> Any:
        writer = base(provider, *args, **kwargs)
        return None if writer is None else _CountingWriter(writer, state)

    return method


_PLAIN: dict[str, tuple[str, _Size | None]] = {
    "get_object": ("get", _result_size),
    "get_object_if_smaller": ("get", _result_size),  # bytes when small enough, else the size (an int)
    "put_object": ("put", _body_size),
    "get_object_metadata": ("head", None),
    "delete_object": ("delete", None),
    "copy_object": ("copy", None),
    "copy_from": ("copy", None),
    "delete_prefix": ("delete_many", None),
    "upload_file": ("upload", lambda a, k, r: _file_size(_arg(a, k, 1, "f"))),
}
_SPECIAL = {"list_objects": _wrap_list, "download_file": _wrap_download, "open_writer": _wrap_writer}
#: The instance attributes :func:`instrument` sets (left out of a pickled state).
_SET = frozenset({*_PLAIN, *_SPECIAL, "__reduce_ex__", _ATTR})


def _set_all(obj: Any, items: Iterable[tuple[str, Any]]) -> None:
    # object.__setattr__ keeps CPython's compact instance attributes (``obj.__dict__`` would not).
    for name, value in items:
        object.__setattr__(obj, name, value)


def _rebuild(base: type, state: Any, spec: InstrumentationSpec) -> Any:
    obj: Any = object.__new__(base)
    if hasattr(obj, "__setstate__") and state is not None:
        obj.__setstate__(state)
    elif state:
        if any(hasattr(getattr(base, name, None), "__set__") for name in state):
            obj.__dict__.update(state)  # a data descriptor of that name: pickle's own way
        else:
            _set_all(obj, state.items())
    return instrument(obj, spec)


def _reduce_ex(self: Any, protocol: Any) -> tuple[Any, ...]:
    state = self.__getstate__()
    if isinstance(state, dict):
        state = {k: v for k, v in state.items() if k not in _SET}
    own = _state_of(self)
    assert own is not None  # set only by instrument(), with the state
    return (_rebuild, (type(self), state, own.spec))


def _wrappers(provider: Any, state: _State) -> dict[str, Any]:
    """The instance attributes that instrument ``provider``: one wrapper per operation."""
    base = type(provider)
    found: dict[str, Any] = {}
    for name, (op, size) in _PLAIN.items():
        method = getattr(base, name, None)
        if callable(method):
            found[name] = _compile(provider, method, op, size, state) or _wrap(
                provider, method, op, size, state
            )
    for name, make in _SPECIAL.items():
        method = getattr(base, name, None)
        if callable(method):
            found[name] = make(provider, method, state)
    for name, wrapper in found.items():
        # Named and documented as the bound method (its signature has no ``self``).
        functools.update_wrapper(wrapper, getattr(provider, name))
    found["__reduce_ex__"] = types.MethodType(_reduce_ex, provider)
    return found


def _state_of(provider: Any) -> _State | None:
    try:  # object.__getattribute__: no provider __getattr__, and no __dict__ made
        found = object.__getattribute__(provider, _ATTR)
    except AttributeError:
        return None
    return found if isinstance(found, _State) else None


def is_instrumented(provider: Any) -> bool:
    """True if :func:`instrument` was applied to ``provider``."""
    return _state_of(provider) is not None


def instrument(provider: Any, spec: InstrumentationSpec) -> Any:
    """Make ``provider`` record a metric for each of its storage operations.

    Args:
        provider: A storage provider instance (modified in place; instrumenting twice is a no-op).
        spec: Where records go and which attributes they carry.

    Returns:
        ``provider`` itself.
    """
    if is_instrumented(provider):
        return provider
    provider_type = getattr(provider, "provider_name", None) or type(provider).__name__
    state = _State(spec, str(provider_type))
    _set_all(provider, _wrappers(provider, state).items())
    object.__setattr__(provider, _ATTR, state)
    return provider


def instrument_config(
    provider: Any,
    opentelemetry: Any,
    masked_config: Mapping[str, Any],
    profile: str,
    telemetry: Any = None,
    telemetry_provider: Callable[[], Any] | None = None,
) -> Any:
    """Validate a config's ``opentelemetry`` section and, if it has ``metrics``, instrument ``provider``.

    Args:
        provider: The profile's storage provider.
        opentelemetry: The section (environment variables already expanded).
        masked_config: The whole config with secrets masked (see ``manystore.config.mask_secrets``).
        profile: The profile name.
        telemetry: A :class:`~manystore.telemetry.Telemetry` (or proxy), if the caller gave one.
        telemetry_provider: A top-level function returning one, if the caller gave one.

    Returns:
        ``provider`` (instrumented or not).

    Raises:
        ConfigError: The section is invalid (the message names the key).
    """
    from ._setup import validate_opentelemetry

    metrics = validate_opentelemetry(opentelemetry, masked_config)
    if metrics is None:
        return provider
    return instrument(
        provider, InstrumentationSpec(profile, metrics, masked_config, telemetry, telemetry_provider)
    )
