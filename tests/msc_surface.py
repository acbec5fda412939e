"""The public API surface of ``multistorageclient`` (or of ``manystore``) as a flat JSON map.

Run with the reference's interpreter to print the reference surface::

    .tools/msc-venv/bin/python tests/msc_surface.py multistorageclient

``tests/test_msc_surface.py`` imports :func:`surface` and computes the same map for
``manystore`` in-process, then compares the two.

Every entry is ``dotted name -> description``:

* ``name`` -> ``function`` / ``class`` / ``module`` / ``constant=<repr>`` (top level and modules);
* ``name(param)`` -> ``<KIND>[@position][=<default repr>]`` for each parameter (``self``/``cls``
  left out; the position only for positional parameters);
* ``Class.member`` -> ``method`` / ``classmethod`` / ``staticmethod`` / ``property`` /
  ``attribute`` / ``member=<value repr>`` (enum members);
* ``Class(field)`` -> the constructor's parameters, as for functions.

What is compared (the public API a user imports):

* the top-level names: ``__all__``, ``__version__`` and the lazily loaded helper modules
  (``numpy``, ``pickle``, ``os``, ``async_fs``, ``torch``, ``ray``, ``hydra``);
* the classes ``StorageClient``, ``StorageClientConfig``, ``CacheConfig``, ``ObjectMetadata``,
  ``Path``, ``SyncResult``, ``DryrunResult`` (public methods, properties, constructor);
* ``types``: every public class, enum and constant it defines;
* ``generators`` and every ``contrib`` module.

Left out as implementation detail: the reference's ``client.single``/``client.composite``
delegates, ``providers.*`` (configured by ``type:`` names, not imported), ``sync.*`` workers,
``rust_utils``, ``instrumentation``, ``telemetry`` internals, ``mcp``, ``explorer``,
``commands`` (its CLI), ``signers`` and ``caching`` internals, ``utils``, ``schema`` and
``config`` helpers other than ``StorageClientConfig``. Names starting with ``_`` are private.

The reference's ``contrib`` modules import optional libraries (numpy, torch, fsspec, hydra,
ray) that its venv does not have; such a module is read from its source with :mod:`ast`.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import json
import os
import re
import sys
from typing import Any

TOP_LEVEL_CLASSES = [
    "StorageClient",
    "StorageClientConfig",
    "CacheConfig",
    "ObjectMetadata",
    "Path",
    "SyncResult",
    "DryrunResult",
]
LAZY_MODULES = ["async_fs", "hydra", "numpy", "os", "pickle", "ray", "torch"]
CONTRIB_MODULES = [
    "contrib.async_fs",
    "contrib.hydra",
    "contrib.numpy",
    "contrib.os",
    "contrib.os.path",
    "contrib.pickle",
    "contrib.ray",
    "contrib.torch",
]
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _default(value: Any) -> str:
    return _ADDRESS.sub("", repr(value))


def _params(prefix: str, fn: Any, out: dict[str, str], skip_first: bool = False) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())
    if skip_first and params and params[0].name in ("self", "cls"):
        params = params[1:]
    position = 0
    for p in params:
        text = p.kind.name
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            text += f"@{position}"
            position += 1
        if p.default is not p.empty:
            text += "=" + _default(p.default)
        out[f"{prefix}({p.name})"] = text


def _constant(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, bytes, tuple, frozenset)) or value is None


def _class(name: str, cls: type, out: dict[str, str]) -> None:
    out[name] = "class"
    if issubclass(cls, enum.Enum):
        for member in cls:
            out[f"{name}.{member.name}"] = "member=" + _default(member.value)
        return
    if dataclasses.is_dataclass(cls) or "__init__" in _own_attrs(cls) or cls.__init__ is not object.__init__:
        _params(name, cls, out)
    for attr in sorted(_public_attrs(cls)):
        raw = inspect.getattr_static(cls, attr)
        key = f"{name}.{attr}"
        if isinstance(raw, property) or type(raw).__name__ == "cached_property":
            out[key] = "property"
        elif isinstance(raw, staticmethod):
            out[key] = "staticmethod"
            _params(key, raw.__func__, out)
        elif isinstance(raw, classmethod):
            out[key] = "classmethod"
            _params(key, raw.__func__, out, skip_first=True)
        elif inspect.isfunction(raw):
            out[key] = "method"
            _params(key, raw, out, skip_first=True)
        elif dataclasses.is_dataclass(cls) and attr in {f.name for f in dataclasses.fields(cls)}:
            continue  # a field's default is compared as a constructor parameter
        elif _constant(raw):
            out[key] = "attribute"


def _own_attrs(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__ in ("builtins", "abc", "enum", "typing") or klass.__module__.startswith("_"):
            continue
        names |= set(vars(klass))
    return names


def _public_attrs(cls: type) -> set[str]:
    return {n for n in _own_attrs(cls) if not n.startswith("_")}


def _object(name: str, value: Any, out: dict[str, str]) -> None:
    if inspect.isclass(value):
        _class(name, value, out)
    elif inspect.ismodule(value):
        out[name] = "module"
    elif callable(value):
        out[name] = "function"
        _params(name, value, out)
    elif _constant(value):
        out[name] = "constant=" + _default(value)


def _module_names(module: Any, strict: bool) -> list[str]:
    """Public names of ``module``: its ``__all__``, else what it defines (``strict``) or holds."""
    names = getattr(module, "__all__", None)
    if names is not None and strict:
        return list(names)
    result = []
    here = module.__name__
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        origin = getattr(value, "__module__", None)
        own = isinstance(origin, str) and (origin == here or origin.startswith(here + "."))
        if not strict or own or (origin is None and _constant(value) and name.isupper()):
            result.append(name)
    return result


# -------------------------------------------------------------- AST fallback (unimportable modules)
def _ast_default(node: ast.expr) -> str:
    try:
        return _default(ast.literal_eval(node))
    except ValueError:
        return ast.unparse(node)


def _ast_params(
    prefix: str, fn: ast.FunctionDef | ast.AsyncFunctionDef, out: dict[str, str], method: bool
) -> None:
    a = fn.args
    positional = a.posonlyargs + a.args
    if method and positional and positional[0].arg in ("self", "cls") and not _is_static(fn):
        positional = positional[1:]
    pos_defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    pos_defaults = pos_defaults[-len(positional) :] if positional else []
    for i, (arg, default) in enumerate(zip(positional, pos_defaults, strict=True)):
        kind = "POSITIONAL_ONLY" if arg in a.posonlyargs else "POSITIONAL_OR_KEYWORD"
        out[f"{prefix}({arg.arg})"] = f"{kind}@{i}" + ("" if default is None else "=" + _ast_default(default))
    if a.vararg:
        out[f"{prefix}({a.vararg.arg})"] = "VAR_POSITIONAL"
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        out[f"{prefix}({arg.arg})"] = "KEYWORD_ONLY" + (
            "" if kw_default is None else "=" + _ast_default(kw_default)
        )
    if a.kwarg:
        out[f"{prefix}({a.kwarg.arg})"] = "VAR_KEYWORD"


def _is_static(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)


def _decorated(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    for d in fn.decorator_list:
        if isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod", "property"):
            return d.id
    return "method"


def _ast_module(name: str, path: str, out: dict[str, str], only: set[str] | None = None) -> None:
    tree = ast.parse(open(path, encoding="utf-8").read())  # noqa: SIM115 - a short read
    here = os.path.dirname(path)
    exported: set[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            exported = set(ast.literal_eval(node.value))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            sub = os.path.join(here, *node.module.split("."))
            sub_path = sub + ".py" if os.path.exists(sub + ".py") else os.path.join(sub, "__init__.py")
            names = None if node.names[0].name == "*" else {a.name for a in node.names}
            _ast_module(name, sub_path, out, names if exported is None else (names or set()) & exported)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            public = not node.name.startswith("_")
            if (only is not None and node.name not in only) or (only is None and not public):
                continue
            if exported is not None and node.name not in exported:
                continue
            key = f"{name}.{node.name}"
            if isinstance(node, ast.ClassDef):
                out[key] = "class"
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        if item.name == "__init__":
                            _ast_params(key, item, out, method=True)
                        elif not item.name.startswith("_"):
                            kind = _decorated(item)
                            out[f"{key}.{item.name}"] = kind
                            if kind != "property":
                                _ast_params(f"{key}.{item.name}", item, out, method=True)
            else:
                out[key] = "function"
                _ast_params(key, node, out, method=False)


def _submodule(package: str, name: str, out: dict[str, str]) -> None:
    try:
        module = importlib.import_module(f"{package}.{name}")
    except ImportError:
        spec_parent = importlib.import_module(package)
        base = os.path.join(os.path.dirname(spec_parent.__file__ or ""), *name.split("."))
        path = base + ".py" if os.path.exists(base + ".py") else os.path.join(base, "__init__.py")
        if not os.path.exists(path):
            return
        out[name] = "module"
        _ast_module(name, path, out)
        return
    out[name] = "module"
    for attr in _module_names(module, strict=package == "multistorageclient"):
        if hasattr(module, attr):
            _object(f"{name}.{attr}", getattr(module, attr), out)


def surface(package: str) -> dict[str, str]:
    """The flat surface map of ``package`` (``multistorageclient`` or ``manystore``)."""
    root = importlib.import_module(package)
    out: dict[str, str] = {}
    for name in [*getattr(root, "__all__", []), "__version__"]:
        if name in TOP_LEVEL_CLASSES or not hasattr(root, name):
            continue
        _object(name, getattr(root, name), out)
    if "__version__" in out:
        out["__version__"] = "constant"  # present; the value differs by design
    available = set(dir(root))
    for name in LAZY_MODULES:
        if package == "multistorageclient" or name in available:
            out[name] = "module"
    for name in TOP_LEVEL_CLASSES:
        if hasattr(root, name):
            _class(name, getattr(root, name), out)
    _submodule(package, "types", out)
    _submodule(package, "generators", out)
    for name in CONTRIB_MODULES:
        _submodule(package, name, out)
    return out


def _appended_positional(reference: dict[str, str], owner: str, got: str) -> bool:
    """True if ``got`` is an extra parameter no call written for the reference can bind differently.

    That is ``*args`` where the reference has none, or a positional parameter with a default
    placed after all of the reference's positional parameters when the reference takes no
    ``*args`` (a reference call passes at most that many positionals).
    """
    kinds = [v for k, v in reference.items() if k.startswith(owner + "(")]
    if any(v.startswith("VAR_POSITIONAL") for v in kinds):
        return False
    if got == "VAR_POSITIONAL":
        return True
    match = re.match(r"POSITIONAL_OR_KEYWORD@(\d+)=", got)
    if not match:
        return False
    positional = sum(1 for v in kinds if v.startswith(("POSITIONAL_OR_KEYWORD", "POSITIONAL_ONLY")))
    return int(match.group(1)) >= positional


def compare(reference: dict[str, str], ours: dict[str, str]) -> dict[str, str]:
    """Each difference of ``ours`` from ``reference``: dotted name -> what differs.

    A reference entry missing from ``ours`` or described differently is a difference; so is
    a parameter ``ours`` adds to a reference function unless it is keyword-only with a
    default (or ``**kwargs``). Other extra names are allowed, and so is a default for a
    parameter the reference requires (every call written for the reference still works), and
    named parameters where the reference takes ``(*args, **kwargs)``, and positional
    parameters with defaults appended after all of the reference's (see
    :func:`_appended_positional`).
    """
    out: dict[str, str] = {}
    for key, want in reference.items():
        got = ours.get(key)
        if got is None:
            out[key] = f"missing (reference: {want})"
        elif got != want and not ("=" not in want and got.startswith(want + "=")):
            # (a default given to a parameter the reference requires is compatible)
            out[key] = f"reference {want}, manystore {got}"
    for key, got in ours.items():
        if key in reference or not key.endswith(")"):
            continue
        owner = key[: key.index("(")]
        takes_anything = f"{owner}(args)" in reference and f"{owner}(kwargs)" in reference
        if takes_anything and reference.get(f"{owner}(args)", "").startswith("VAR_POSITIONAL"):
            continue  # the reference forwards (*args, **kwargs): naming what is forwarded is compatible
        if owner in reference and _appended_positional(reference, owner, got):
            continue
        if owner in reference and not (got.startswith("KEYWORD_ONLY=") or got == "VAR_KEYWORD"):
            out[key] = f"extra parameter {got} (allowed only keyword-only with a default)"
    return out


if __name__ == "__main__":
    json.dump(
        surface(sys.argv[1] if len(sys.argv) > 1 else "multistorageclient"),
        sys.stdout,
        indent=1,
        sort_keys=True,
    )
    sys.stdout.write("\n")
