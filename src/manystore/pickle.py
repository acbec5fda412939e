"""``pickle.load`` / ``pickle.dump`` for URLs (``msc://``, ``s3://``...), paths and file objects.

Safe by default, unlike MSC 1.3.1 (whose ``load`` is plain ``pickle.load``): unpickling
runs code named by the bytes, so :func:`load` refuses every global except plain
containers and scalars unless the caller says the data is trusted (``trusted=True``)
or names the globals it allows (``allowed={"mymod.MyClass"}``). A refused global raises
:class:`pickle.UnpicklingError` naming it.
"""

from __future__ import annotations

import io
import pickle as _pickle
from collections.abc import Callable, Iterable
from typing import IO, Any

__all__ = ["SAFE_GLOBALS", "dump", "load"]

#: Globals a default (untrusted) :func:`load` may resolve: data types only, no callables with effects.
SAFE_GLOBALS = frozenset(
    {
        "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.complex",
        "builtins.slice", "builtins.range", "collections.OrderedDict", "collections.deque",
        "collections.defaultdict", "datetime.datetime", "datetime.date", "datetime.time",
        "datetime.timedelta", "datetime.timezone", "decimal.Decimal", "uuid.UUID",
        "_codecs.encode", "copyreg._reconstructor", "builtins.object",
    }
)  # fmt: skip


class _RestrictedUnpickler(_pickle.Unpickler):
    def __init__(self, file: IO[bytes], allowed: frozenset[str], **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if f"{module}.{name}" in self._allowed:
            return super().find_class(module, name)
        raise _pickle.UnpicklingError(
            f"refusing to unpickle global {module}.{name}: not in the allowed set; pass "
            f"allowed={{'{module}.{name}'}} or trusted=True if the data comes from a trusted source"
        )


def load(
    file: Any,
    *,
    trusted: bool = False,
    allowed: Iterable[str] = (),
    fix_imports: bool = True,
    encoding: str = "ASCII",
    errors: str = "strict",
    buffers: Iterable[Any] | None = None,
) -> Any:
    """Unpickle from a URL, a path, a :class:`manystore.Path` or a binary file object.

    Args:
        file: Where to read.
        trusted: Allow any global (plain ``pickle.load``): only for data you produced.
        allowed: Extra ``"module.name"`` globals to allow besides :data:`SAFE_GLOBALS`.
        fix_imports: As ``pickle.load``.
        encoding: As ``pickle.load``.
        errors: As ``pickle.load``.
        buffers: As ``pickle.load``.

    Raises:
        pickle.UnpicklingError: The data names a global that is not allowed.
    """
    options: dict[str, Any] = {
        "fix_imports": fix_imports,
        "encoding": encoding,
        "errors": errors,
        "buffers": buffers,
    }
    if isinstance(file, (str, bytes)) or hasattr(file, "__fspath__") or hasattr(file, "read_bytes"):
        from .shortcuts import read

        fh: IO[bytes] = io.BytesIO(file.read_bytes() if hasattr(file, "read_bytes") else read(str(file)))
    else:
        fh = file
    if trusted:
        return _pickle.load(fh, **options)
    return _RestrictedUnpickler(fh, SAFE_GLOBALS | frozenset(allowed), **options).load()


def dump(
    obj: Any,
    file_path: Any,
    protocol: int | None = None,
    *,
    fix_imports: bool = True,
    buffer_callback: Callable[[Any], Any] | None = None,
    attributes: dict[str, str] | None = None,
) -> None:
    """Pickle ``obj`` to a URL, path or :class:`manystore.Path` (written as one object).

    Args:
        obj: What to pickle.
        file_path: Where to write.
        protocol: Pickle protocol (default: pickle's).
        fix_imports: As ``pickle.dump``.
        buffer_callback: As ``pickle.dump``.
        attributes: Metadata stored with the object (object stores).
    """
    data = _pickle.dumps(obj, protocol=protocol, fix_imports=fix_imports, buffer_callback=buffer_callback)
    from .shortcuts import write

    write(str(file_path), data, attributes)
