"""``SampleBatch[T]``: a list of samples whose fields read as columns.

``batch.image`` stacks an array field into one array of shape ``(N, ...)``; any other
field reads as a list of the samples' values. Columns are computed once per batch.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from .sample import DictSample, sample_fields

__all__ = ["SampleBatch"]

_T = TypeVar("_T")


class SampleBatch(Generic[_T]):
    """A batch of samples with per-field column access.

    Args:
        samples: The samples (all of one type).
        sample_type: Their type; default: ``SampleBatch[T](...)``'s ``T``, else the
            first sample's type.

    Raises:
        TypeError: Samples of different types.

    Example:
        >>> batch = SampleBatch[Image](samples)
        >>> batch.image.shape   # (len(samples), 3, 64, 64)
        >>> batch.label         # [3, 1, ...]
    """

    def __init__(self, samples: Sequence[_T], *, sample_type: type[_T] | None = None) -> None:
        self.samples: list[_T] = list(samples)
        self._type = sample_type
        self._columns: dict[str, Any] = {}
        kinds = {type(s) for s in self.samples}
        if len(kinds) > 1:
            names = sorted(k.__qualname__ for k in kinds)
            raise TypeError(f"SampleBatch: expected samples of one type, got {', '.join(names)}")

    @property
    def sample_type(self) -> type[_T]:
        """The samples' type.

        Raises:
            TypeError: An empty batch built without a type.
        """
        if self._type is None:
            orig = getattr(self, "__orig_class__", None)
            args = typing.get_args(orig) if orig is not None else ()
            if args and isinstance(args[0], type):
                self._type = args[0]
            elif self.samples:
                self._type = type(self.samples[0])
            else:
                raise TypeError(
                    "an empty SampleBatch needs a type: SampleBatch[MySample]([]) or sample_type="
                )
        return self._type

    def field_names(self) -> list[str]:
        """The fields readable as columns."""
        st = self.sample_type
        if st is DictSample:
            names: dict[str, None] = {}
            for s in self.samples:
                names.update(dict.fromkeys(typing.cast("DictSample", s).keys()))
            return list(names)
        return [f.name for f in sample_fields(st)]

    def column(self, name: str) -> Any:
        """Field ``name`` across the batch: a stacked array for arrays, else a list.

        Raises:
            AttributeError: No such field.
            ValueError: Arrays of different shapes or dtypes in one array field.
        """
        if name in self._columns:
            return self._columns[name]
        if name not in self.field_names():
            raise AttributeError(
                f"SampleBatch[{self.sample_type.__qualname__}] has no field {name!r}; fields: {self.field_names()}"
            )
        values = [getattr(s, name) for s in self.samples]
        column: Any = values
        if values and all(isinstance(v, np.ndarray) for v in values):
            shapes = {(v.shape, v.dtype.str) for v in values}
            if len(shapes) > 1:
                raise ValueError(
                    f"SampleBatch.{name}: cannot stack arrays of different shapes/dtypes "
                    f"{sorted(shapes)[:4]}; expected one shape and dtype"
                )
            column = np.stack(values)
        self._columns[name] = column
        return column

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("samples",):
            raise AttributeError(name)
        return self.column(name)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[_T]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> _T:
        return self.samples[i]

    def __repr__(self) -> str:
        name = self.sample_type.__qualname__ if (self._type or self.samples) else "?"
        return f"SampleBatch[{name}]({len(self.samples)} samples)"
