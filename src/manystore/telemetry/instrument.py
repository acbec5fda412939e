"""Instrumenting a storage provider: the one place every storage operation is measured.

:func:`instrument` switches a provider instance to a generated subclass of its own class
whose public operations time the call and append one record to the process's buffer
(:mod:`manystore.telemetry._recorder`). ``isinstance`` checks still hold, and a provider
of a config without telemetry is never touched, so telemetry off costs nothing.
An instrumented provider pickles as its plain class plus the instrumentation spec, and
is instrumented again (with fresh state) in the receiving process.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
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
    not vary per thread or per call (the wrappers' fast path); a forked child starts with
    empty caches (``process``-scope attributes such as the pid differ there).
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
        self._groups: dict[tuple[str, str], _recorder.Group] = {}
        self._tls = threading.local()
        _STATES.add(self)

    def _forget(self) -> None:
        self.ok, self._groups, self._tls = {}, {}, threading.local()

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


def _wrap(base: Callable[..., Any], op: str, size: _Size | None) -> Any:
    # The hot path (as in _TEMPLATE): one dict lookup for the cached group, one or two deque
    # appends. Errors and per-thread/per-call attributes take _State.group/record.
    perf = _perf

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = perf()
        try:
            result = base(self, *args, **kwargs)
        except BaseException as exc:
            self._manystore_telemetry.record(op, perf() - start, "error." + type(exc).__name__, None)
            raise
        latency = perf() - start
        state: _State = self._manystore_telemetry
        group = state.ok.get(op) or state.group(op, "success")
        if size is not None:
            nbytes = size(args, kwargs, result)
            if nbytes is not None:
                group.nb.append(nbytes)
        group.lat.append(latency)
        return result

    return functools.update_wrapper(method, base)


_TEMPLATE = """\
def {name}({params}):
    _ms_start = _ms_perf()
    try:
        _ms_result = _ms_base({call})
    except BaseException as _ms_exc:
        {self}._manystore_telemetry.record(
            _ms_op, _ms_perf() - _ms_start, "error." + type(_ms_exc).__name__, None
        )
        raise
    _ms_latency = _ms_perf() - _ms_start
    _ms_state = {self}._manystore_telemetry
    _ms_group = _ms_state.ok.get(_ms_op) or _ms_state.group(_ms_op, "success")
{size}    _ms_group.lat.append(_ms_latency)
    return _ms_result
"""
_SIZE_LINES = """\
    _ms_n = {expr}
    if _ms_n is not None:
        _ms_group.nb.append(_ms_n)
"""
#: Size functions the compiled wrappers inline (``{}``: the variable holding the bytes).
_INLINE_SIZES: dict[Any, tuple[str, str | None]] = {
    None: ("None", None),
    _result_size: ("len({0}) if type({0}) is bytes else _ms_nbytes({0})", "_ms_result"),
    _body_size: ("len({0}) if type({0}) is bytes else _ms_nbytes({0})", "body"),
}


def _compile(base: Callable[..., Any], op: str, size: _Size | None) -> Any:
    """A wrapper with ``base``'s own parameters (no ``*args``/``**kwargs`` repacking), or None.

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
    }
    defs: list[str] = []
    call: list[str] = []
    star = False
    for i, p in enumerate(params):
        if p.name.startswith("_ms_"):
            return None
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
    expr, var = _INLINE_SIZES[size]
    names = {p.name for p in params if p.kind not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD)}
    if var is not None and not var.startswith("_ms_") and var not in names:
        return None
    source = _TEMPLATE.format(
        name=base.__name__,
        params=", ".join(defs),
        call=", ".join(call),
        self=params[0].name,
        size=_SIZE_LINES.format(expr=expr.format(var)) if var else "",
    )
    exec(compile(source, f"<manystore telemetry wrapper of {base.__qualname__}>", "exec"), namespace)
    return functools.update_wrapper(namespace[base.__name__], base)


def _wrap_download(base: Callable[..., Any]) -> Any:
    @functools.wraps(base)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        state: _State = getattr(self, _ATTR)
        f = _arg(args, kwargs, 1, "f")
        before = None if isinstance(f, (str, os.PathLike)) else _file_size(f)
        start = _perf()
        try:
            result = base(self, *args, **kwargs)
        except BaseException as exc:
            state.record("download", _perf() - start, "error." + type(exc).__name__, None)
            raise
        after = _file_size(f)
        nbytes = after - (before or 0) if after is not None else None
        state.record("download", _perf() - start, "success", nbytes)
        return result

    return method


def _wrap_list(base: Callable[..., Iterator[Any]]) -> Any:
    @functools.wraps(base)
    def method(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        state: _State = getattr(self, _ATTR)
        start = _perf()
        try:
            yield from base(self, *args, **kwargs)
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


def _wrap_writer(base: Callable[..., Any]) -> Any:
    @functools.wraps(base)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        writer = base(self, *args, **kwargs)
        return None if writer is None else _CountingWriter(writer, getattr(self, _ATTR))

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
_CLASSES: dict[type, type] = {}
_CLASSES_LOCK = threading.Lock()


def _rebuild(base: type, state: Any, spec: InstrumentationSpec) -> Any:
    obj: Any = object.__new__(base)
    if hasattr(obj, "__setstate__") and state is not None:
        obj.__setstate__(state)
    elif state:
        obj.__dict__.update(state)
    return instrument(obj, spec)


def _reduce_ex(self: Any, protocol: Any) -> tuple[Any, ...]:
    base = type(self).__mro__[1]
    state = self.__getstate__()
    if isinstance(state, dict):
        state = {k: v for k, v in state.items() if k != _ATTR}
    return (_rebuild, (base, state, getattr(self, _ATTR).spec))


def _instrumented_class(base: type) -> type:
    with _CLASSES_LOCK:
        cls = _CLASSES.get(base)
        if cls is not None:
            return cls
        namespace: dict[str, Any] = {"__reduce_ex__": _reduce_ex, "__module__": base.__module__}
        for name, (op, size) in _PLAIN.items():
            if callable(getattr(base, name, None)):
                method = getattr(base, name)
                namespace[name] = _compile(method, op, size) or _wrap(method, op, size)
        if callable(getattr(base, "list_objects", None)):
            namespace["list_objects"] = _wrap_list(base.list_objects)  # type: ignore[attr-defined]
        if callable(getattr(base, "download_file", None)):
            namespace["download_file"] = _wrap_download(base.download_file)  # type: ignore[attr-defined]
        if callable(getattr(base, "open_writer", None)):
            namespace["open_writer"] = _wrap_writer(base.open_writer)  # type: ignore[attr-defined]
        cls = _CLASSES[base] = type(base.__name__, (base,), namespace)
        cls.__qualname__ = base.__qualname__
        return cls


def is_instrumented(provider: Any) -> bool:
    """True if :func:`instrument` was applied to ``provider``."""
    return _ATTR in getattr(provider, "__dict__", {})


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
    provider.__class__ = _instrumented_class(type(provider))
    provider.__dict__[_ATTR] = state
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
