"""ETL: Python transforms registered by name, applied inline to reads or to many objects.

A transform is a Python callable registered under a name, as the AIStore SDK registers
an ETL server::

    etl = Client().etl("to-upper")

    @etl.init_class()                       # a class: transform() or transform_stream()
    class Upper(ETLServer):
        def transform(self, data, path, etl_args):
            return data.upper()

    Client().etl("gzip-it").init(gzip.compress)  # a function: bytes -> bytes

A function takes ``(data)``, ``(data, etl_args)`` or ``(data, path, etl_args)``; with
``streaming=True`` it gets a binary file instead of bytes and returns bytes, an iterable
of bytes or a binary file. A class is instantiated once per process (with no arguments);
``transform(data, path, etl_args)`` gets bytes, ``transform_stream(reader, path,
etl_args)`` a binary file and yields bytes (``transform`` wins when both are defined, as
in the SDK).

The registry lives in this process; a transform defined at module level of an
importable module is also recorded under ``<cache dir>/batch-etl/<name>.json`` so other
processes of the machine find it by name, and worker processes import it. Bulk
transforms are :mod:`manystore.batch.etl_job`; ``docs/batch.md`` has the details.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from ..caching.cache_config import default_cache_path

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "ETLDetails",
    "ETLInfo",
    "ETLServer",
    "Etl",
    "FastAPIServer",
    "FlaskServer",
    "HTTPMultiThreadedServer",
    "Registration",
    "list_etls",
    "lookup",
    "parse_duration",
]

#: Stage of a registered transform that can be used.
STAGE_RUNNING = "Running"
#: Stage after :meth:`Etl.stop` (until :meth:`Etl.start`).
STAGE_STOPPED = "Stopped"
#: The SDK's communication types (they describe the transport to a pod; here every
#: transform is a call in the worker that reads the object).
COMM_TYPES = ("hpush", "hpull", "ws")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: str | float | int, what: str) -> float:
    """Seconds of ``"45s"``, ``"5m"``, ``"1h"``, ``"500ms"`` or a number.

    Raises:
        ValueError: Not one of these forms, or not positive.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"{what}={value!r}: expected a duration such as '45s', '5m', '1h' or seconds")
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
        seconds = float(match.group(1)) * scale
    if seconds <= 0:
        raise ValueError(f"{what}={value!r}: expected a positive duration")
    return seconds


class ETLServer:
    """Base of class-based transforms (the SDK's ``ETLServer`` API, without a server).

    Override :meth:`transform` (buffered) or :meth:`transform_stream` (streaming). The
    class is instantiated once per process, with no arguments; load models or tables
    in ``__init__``.
    """

    def transform(self, data: bytes | str, path: str, etl_args: str) -> bytes:
        """Transform one object's bytes (or its local path, with ``direct_file_access``).

        Args:
            data: The object's content.
            path: The source object's URL.
            etl_args: Per-request arguments (``""`` when none).
        """
        raise NotImplementedError(f"{type(self).__name__} must override transform() or transform_stream()")

    def transform_stream(self, reader: BinaryIO, path: str, etl_args: str) -> Iterator[bytes]:
        """Transform one object's content read from ``reader``, yielding output chunks."""
        raise NotImplementedError(f"{type(self).__name__} must override transform() or transform_stream()")

    def get_mime_type(self) -> str:
        """MIME type of the output (as the SDK's servers; informational here)."""
        return "application/octet-stream"


class FastAPIServer(ETLServer):
    """The SDK's FastAPI server base; here the same as :class:`ETLServer`."""


class FlaskServer(ETLServer):
    """The SDK's Flask server base; here the same as :class:`ETLServer`."""


class HTTPMultiThreadedServer(ETLServer):
    """The SDK's threaded HTTP server base; here the same as :class:`ETLServer`."""


@dataclass(frozen=True)
class Registration:
    """A registered transform, as it travels to worker processes (pickled by reference).

    Attributes:
        name: The ETL name.
        target: The function or class.
        kind: ``"function"`` or ``"class"``.
        streaming: Takes a binary file rather than bytes.
        arity: Positional arguments of a function (1, 2 or 3).
        obj_timeout: Seconds one object's transform may take.
        direct_file_access: A local source's path is passed instead of its bytes.
        env: Environment variables set before a class is instantiated.
    """

    name: str
    target: Any
    kind: str
    streaming: bool
    arity: int = 3
    obj_timeout: float = 45.0
    direct_file_access: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """``module:qualname`` of the target."""
        return f"{getattr(self.target, '__module__', '?')}:{getattr(self.target, '__qualname__', '?')}"


@dataclass
class ETLDetails:
    """What :meth:`Etl.view` reports.

    Attributes:
        name: The ETL name.
        stage: ``Running`` or ``Stopped``.
        kind: ``function`` or ``class``.
        transform: ``module:qualname`` of the callable.
        streaming: Whether it reads a stream.
        obj_timeout: Seconds one object may take.
        pipeline: ETL names applied after this one.
        importable: Whether worker processes can import it by name.
    """

    name: str
    stage: str
    kind: str
    transform: str
    streaming: bool
    obj_timeout: float
    pipeline: list[str]
    importable: bool


@dataclass
class ETLInfo:
    """One entry of :meth:`Client.list_etls` (``id`` is the name, as in the SDK)."""

    id: str
    stage: str
    transform: str


# ------------------------------------------------------------------ the registry
_LOCK = threading.Lock()
_REGISTRY: dict[str, Registration] = {}
_STAGES: dict[str, str] = {}
_INSTANCES: dict[str, Any] = {}


def registry_dir(cache_location: str | None = None) -> str:
    """The directory of ETL registration files (``<cache dir>/batch-etl``)."""
    return os.path.join(cache_location or default_cache_path(), "batch-etl")


def importable(target: Any) -> bool:
    """Whether ``target`` can be imported by ``module:qualname`` in a fresh interpreter."""
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", "")
    if not module or "<" in qualname:
        return False
    if module == "__main__":
        main = importlib.import_module("__main__")
        return bool(getattr(main, "__file__", None))  # spawn re-runs a script's main module
    return True


def _write_record(reg: Registration, stage: str, location: str | None) -> None:
    directory = registry_dir(location)
    path = os.path.join(directory, f"{reg.name}.json")
    if not importable(reg.target) or reg.target.__module__ == "__main__":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    os.makedirs(directory, exist_ok=True)
    data = {
        "module": reg.target.__module__,
        "qualname": reg.target.__qualname__,
        "kind": reg.kind,
        "streaming": reg.streaming,
        "arity": reg.arity,
        "obj_timeout": reg.obj_timeout,
        "direct_file_access": reg.direct_file_access,
        "env": reg.env,
        "stage": stage,
    }
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _read_record(name: str, location: str | None) -> tuple[Registration, str] | None:
    path = os.path.join(registry_dir(location), f"{name}.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    target: Any = importlib.import_module(data["module"])
    for part in data["qualname"].split("."):
        target = getattr(target, part)
    reg = Registration(
        name,
        target,
        data["kind"],
        data["streaming"],
        data["arity"],
        data["obj_timeout"],
        data["direct_file_access"],
        data["env"],
    )
    return reg, data["stage"]


def register(reg: Registration, location: str | None) -> None:
    """Register ``reg`` in this process (and on disk when importable)."""
    with _LOCK:
        _REGISTRY[reg.name] = reg
        _STAGES[reg.name] = STAGE_RUNNING
        _INSTANCES.pop(reg.name, None)
    _write_record(reg, STAGE_RUNNING, location)


def lookup(name: str, location: str | None = None, *, running: bool = True) -> Registration:
    """The transform registered as ``name`` (in this process, else on this machine).

    Raises:
        LookupError: No such ETL.
        RuntimeError: It is stopped and ``running`` is required.
    """
    with _LOCK:
        reg, stage = _REGISTRY.get(name), _STAGES.get(name, STAGE_RUNNING)
    if reg is None:
        found = _read_record(name, location)
        if found is None:
            raise LookupError(
                f"ETL {name!r} is not registered; register it with Client().etl({name!r}).init(fn) or .init_class()"
            )
        reg, stage = found
        with _LOCK:
            _REGISTRY.setdefault(name, reg)
            _STAGES.setdefault(name, stage)
    if running and stage != STAGE_RUNNING:
        raise RuntimeError(f"ETL {name!r} is {stage.lower()}; call Client().etl({name!r}).start() first")
    return reg


def _set_stage(name: str, stage: str, location: str | None) -> None:
    reg = lookup(name, location, running=False)
    with _LOCK:
        _STAGES[name] = stage
    _write_record(reg, stage, location)


def _function_arity(fn: Callable[..., Any], name: str) -> int:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 1  # a builtin without a signature: called with the data alone
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
    if 1 <= len(required) <= 3:
        return len(required)  # parameters with defaults are left to their defaults
    if not required and (varargs or positional):
        return 3 if varargs else 1
    raise TypeError(
        f"ETL {name!r}: {getattr(fn, '__qualname__', fn)!r} takes {len(required)} required arguments; "
        "expected (data), (data, etl_args) or (data, path, etl_args)"
    )


def _check_comm(comm_type: str) -> None:
    if comm_type.rstrip(":/") not in COMM_TYPES:
        raise ValueError(f"comm_type={comm_type!r}: expected one of {list(COMM_TYPES)}")


def _foreign_server(cls: type) -> bool:
    return any(
        base.__name__ == "ETLServer" and base.__module__.startswith("aistore.") for base in cls.__mro__
    )


class Etl:
    """One ETL by name (as the SDK's ``Etl``); made by :meth:`Client.etl`.

    Args:
        client: The client (its cache location holds the registry files).
        name: 6 to 32 characters of ``[a-z0-9-]``, starting and ending alphanumeric (as AIS).

    Raises:
        ValueError: An invalid name.
    """

    def __init__(self, client: Client | None, name: str) -> None:
        self.validate_etl_name(name)
        self._client, self._name = client, name
        self._pipeline: list[str] = []

    @property
    def _location(self) -> str | None:
        return self._client._jobs_location if self._client is not None else None

    @property
    def name(self) -> str:
        """The ETL name."""
        return self._name

    @property
    def pipeline(self) -> list[str]:
        """Names of the ETLs applied after this one (``a >> b``)."""
        return self._pipeline

    def __rshift__(self, other: Etl) -> Etl:
        """A pipeline: this ETL, then ``other`` (and ``other``'s pipeline)."""
        combined = Etl(self._client, self._name)
        combined._pipeline = [*self._pipeline, other.name, *other.pipeline]
        return combined

    def __enter__(self) -> Etl:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(LookupError):
            self.stop()
            self.delete()

    def __repr__(self) -> str:
        return f"Etl({self._name!r}, pipeline={self._pipeline!r})"

    @staticmethod
    def validate_etl_name(name: str) -> None:
        """Check an ETL name as AIS does.

        Raises:
            ValueError: Shorter than 6 or longer than 32 characters, or not ``[a-z0-9-]``
                starting and ending with a letter or digit.
        """
        if not isinstance(name, str) or not 6 <= len(name) <= 32 or not _NAME.fullmatch(name):
            raise ValueError(
                f"ETL name {name!r}: expected 6-32 characters of [a-z0-9-], starting and ending with a letter or digit"
            )

    def init(
        self,
        transform: Callable[..., Any],
        command: Any = None,
        comm_type: str = "hpush",
        init_timeout: str = "5m",
        obj_timeout: str | float = "45s",
        direct_put: bool = False,
        direct_file_access: bool = False,
        *,
        streaming: bool = False,
        **kwargs: str,
    ) -> str:
        """Register a function as this ETL (the SDK's container image becomes a callable).

        Args:
            transform: ``f(data)``, ``f(data, etl_args)`` or ``f(data, path, etl_args)``
                returning bytes; with ``streaming`` it gets a binary file and returns
                bytes, an iterable of bytes or a binary file.
            command: Must be None (a container command has no meaning here).
            comm_type: ``hpush``, ``hpull`` or ``ws`` (checked; the call is in-process anyway).
            init_timeout: Checked to be a duration (registration is immediate here).
            obj_timeout: Longest one object's transform may take; an object that takes
                longer fails and no output is written for it.
            direct_put: Accepted: outputs are always written straight to the target.
            direct_file_access: Pass a local (POSIX) source's file path (a ``str``)
                instead of its bytes; object-store sources still give bytes.
            streaming: ``transform`` reads a binary file instead of bytes.
            **kwargs: Environment variables set before the transform first runs in a process.

        Returns:
            The ETL name.

        Raises:
            TypeError: ``transform`` is not callable (e.g. a container image name), or
                takes unsuitable arguments; ``command`` given.
            ValueError: A bad ``comm_type`` or duration.
        """
        if not callable(transform) or isinstance(transform, type):
            raise TypeError(
                f"Etl({self._name!r}).init: expected a Python function, got {transform!r} "
                "(container images are AIStore's; use init_class() for a class)"
            )
        if command is not None:
            raise TypeError(f"Etl({self._name!r}).init(command={command!r}): there is no container to run")
        _check_comm(comm_type)
        parse_duration(init_timeout, "init_timeout")
        reg = Registration(
            self._name,
            transform,
            "function",
            streaming,
            _function_arity(transform, self._name),
            parse_duration(obj_timeout, "obj_timeout"),
            direct_file_access,
            {k: str(v) for k, v in kwargs.items()},
        )
        register(reg, self._location)
        return self._name

    def init_class(
        self,
        *,
        dependencies: list[str] | None = None,
        os_packages: list[str] | None = None,
        comm_type: str = "hpush",
        init_timeout: str = "5m",
        obj_timeout: str | float = "45s",
        direct_put: bool = True,
        direct_file_access: bool = False,
        **kwargs: str,
    ) -> Callable[[type], type]:
        """A class decorator registering the class as this ETL (as the SDK's ``init_class``).

        The class defines ``transform(self, data, path, etl_args)`` or
        ``transform_stream(self, reader, path, etl_args)`` (typically subclassing
        :class:`ETLServer`); it is instantiated once per process.

        Args:
            dependencies: Must be empty: install packages in this environment instead.
            os_packages: Must be empty: install packages on this machine instead.
            comm_type: ``hpush``, ``hpull`` or ``ws`` (checked; the call is in-process anyway).
            init_timeout: Checked to be a duration.
            obj_timeout: Longest one object's transform may take (see :meth:`init`).
            direct_put: Accepted: outputs are always written straight to the target.
            direct_file_access: Pass a local source's path instead of its bytes (see :meth:`init`).
            **kwargs: Environment variables set before the class is instantiated in a process.

        Raises:
            NotImplementedError: ``dependencies`` or ``os_packages`` given.
            TypeError: (from the decorator) the class defines neither method, or extends
                the ``aistore`` package's ``ETLServer`` (import ``ETLServer`` from
                ``manystore.batch`` instead: no server runs here).
        """
        for what, value in (("dependencies", dependencies), ("os_packages", os_packages)):
            if value:
                raise NotImplementedError(
                    f"Etl({self._name!r}).init_class({what}={value!r}): transforms run in this "
                    "environment; install what they need here"
                )
        _check_comm(comm_type)
        parse_duration(init_timeout, "init_timeout")
        timeout = parse_duration(obj_timeout, "obj_timeout")
        env = {k: str(v) for k, v in kwargs.items()}

        def decorator(cls: type) -> type:
            if not isinstance(cls, type):
                raise TypeError(f"Etl({self._name!r}).init_class: expected a class, got {cls!r}")
            if _foreign_server(cls):
                raise TypeError(
                    f"Etl({self._name!r}): {cls.__qualname__} extends aistore's ETLServer, which needs an "
                    "AIStore target; extend manystore.batch.ETLServer (or FastAPIServer) instead"
                )
            buffered = callable(getattr(cls, "transform", None)) and getattr(cls, "transform", None) is not (
                ETLServer.transform
            )
            streamed = callable(getattr(cls, "transform_stream", None)) and getattr(
                cls, "transform_stream", None
            ) is not (ETLServer.transform_stream)
            if not buffered and not streamed:
                raise TypeError(
                    f"Etl({self._name!r}): {cls.__qualname__} must define transform() or transform_stream()"
                )
            register(
                Registration(self._name, cls, "class", not buffered, 3, timeout, direct_file_access, env),
                self._location,
            )
            return cls

        return decorator

    def view(self, job_id: str = "") -> ETLDetails:
        """Details of this ETL (``job_id`` is not needed: a job's status is ``Client.job(id)``).

        Raises:
            LookupError: Not registered.
            ValueError: ``job_id`` given (ask ``Client().job(job_id).status()``).
        """
        if job_id:
            raise ValueError(f"Etl.view(job_id={job_id!r}): use Client().job({job_id!r}).status()")
        reg = lookup(self._name, self._location, running=False)
        with _LOCK:
            stage = _STAGES.get(self._name, STAGE_RUNNING)
        return ETLDetails(
            self._name,
            stage,
            reg.kind,
            reg.reference,
            reg.streaming,
            reg.obj_timeout,
            list(self._pipeline),
            importable(reg.target),
        )

    @property
    def details(self) -> ETLDetails:
        """Same as :meth:`view`."""
        return self.view()

    def start(self) -> None:
        """Make a stopped ETL usable again.

        Raises:
            LookupError: Not registered (a deleted ETL cannot be started).
        """
        _set_stage(self._name, STAGE_RUNNING, self._location)

    def stop(self) -> None:
        """Stop the ETL: new transforms and reads with it raise until :meth:`start`.

        Jobs already running finish.

        Raises:
            LookupError: Not registered.
        """
        _set_stage(self._name, STAGE_STOPPED, self._location)

    def delete(self) -> None:
        """Forget the ETL in this process and on this machine.

        Raises:
            LookupError: Not registered.
        """
        lookup(self._name, self._location, running=False)
        with _LOCK:
            _REGISTRY.pop(self._name, None)
            _STAGES.pop(self._name, None)
            _INSTANCES.pop(self._name, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(registry_dir(self._location), f"{self._name}.json"))


def list_etls(location: str | None, stages: list[str] | None = None) -> list[ETLInfo]:
    """Registered ETLs (this process's and this machine's) whose stage is in ``stages``."""
    wanted = {s.lower() for s in (stages or [STAGE_RUNNING])}
    names = set(_REGISTRY)
    with contextlib.suppress(FileNotFoundError):
        names |= {f[: -len(".json")] for f in os.listdir(registry_dir(location)) if f.endswith(".json")}
    out = []
    for name in sorted(names):
        try:
            reg = lookup(name, location, running=False)
        except (LookupError, ImportError, AttributeError):
            continue
        stage = _STAGES.get(name, STAGE_RUNNING)
        if stage.lower() in wanted:
            out.append(ETLInfo(name, stage, reg.reference))
    return out
