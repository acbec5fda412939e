"""Object collections: a list of names, a numeric range, or a bash brace-expansion template.

:class:`ObjectNames`, :class:`ObjectRange` and :class:`ObjectTemplate` mirror the AIStore
SDK's classes of the same names. Each iterates over the object names it stands for, in
order. Templates follow bash brace expansion:

* ``{a,b,c}`` — alternatives (each may itself hold braces: ``{x,y{1..3}}``);
* ``{0..9}``, ``{9..0}``, ``{a..e}`` — sequences, increasing or decreasing;
* ``{00..99..2}`` — a step; an endpoint written with a leading zero pads every number to
  the wider endpoint's width (as bash does);
* several groups in one name (``s{0..1}-{a,b}.tar`` → ``s0-a.tar s0-b.tar s1-a.tar ...``):
  the leftmost group varies slowest.

Unlike bash, a brace group that is neither a list nor a sequence (``{a}``, ``{}``,
``{1..x}``) and an unbalanced brace are errors (:class:`ValueError` naming the part),
not literal text: a typo in a shard template must not silently select nothing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence

__all__ = ["ObjectCollection", "ObjectNames", "ObjectRange", "ObjectTemplate", "expand_template"]

_NUM_SEQ = re.compile(r"^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$")
_CHAR_SEQ = re.compile(r"^([a-zA-Z])\.\.([a-zA-Z])(?:\.\.(-?\d+))?$")
#: Upper bound on the names one template may stand for (a guard against ``{0..999999999}``).
MAX_EXPANSION = 10_000_000


def _matching_brace(template: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``start``."""
    depth = 0
    for i in range(start, len(template)):
        if template[i] == "{":
            depth += 1
        elif template[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"template {template!r}: unclosed '{{' at position {start}; expected a matching '}}'")


def _split_top(inner: str) -> list[str]:
    """``inner`` split at the commas outside nested braces."""
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[last:i])
            last = i + 1
    parts.append(inner[last:])
    return parts


def _sequence(group: str, inner: str) -> list[str] | None:
    """The names of a ``{x..y[..step]}`` group, or None if ``inner`` is not a sequence."""
    num = _NUM_SEQ.match(inner)
    char = None if num else _CHAR_SEQ.match(inner)
    match = num or char
    if match is None:
        return None
    step = abs(int(match.group(3))) if match.group(3) is not None else 1
    if step == 0:
        raise ValueError(f"brace group {group!r}: step 0; expected a non-zero step")
    if char is not None:
        first, last = ord(match.group(1)), ord(match.group(2))
        stride = step if last >= first else -step
        return [chr(c) for c in range(first, last + (1 if stride > 0 else -1), stride)]
    a, b = match.group(1), match.group(2)
    first, last = int(a), int(b)
    padded = any(len(s.lstrip("-")) > 1 and s.lstrip("-").startswith("0") for s in (a, b))
    width = max(len(a), len(b)) if padded else 0
    stride = step if last >= first else -step
    count = abs(last - first) // step + 1
    if count > MAX_EXPANSION:
        raise ValueError(f"brace group {group!r} stands for {count} names; expected at most {MAX_EXPANSION}")
    return [_pad(n, width) for n in range(first, last + (1 if stride > 0 else -1), stride)]


def _pad(n: int, width: int) -> str:
    if n < 0:
        return "-" + str(-n).zfill(width - 1)
    return str(n).zfill(width)


def _segments(template: str) -> list[list[str]]:
    """``template`` as a product of segments: literal text, or a brace group's alternatives."""
    segments: list[list[str]] = []
    literal, i = [], 0
    while i < len(template):
        ch = template[i]
        if ch == "}":
            raise ValueError(
                f"template {template!r}: unmatched '}}' at position {i}; expected a '{{' before it"
            )
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        end = _matching_brace(template, i)
        group, inner = template[i : end + 1], template[i + 1 : end]
        if literal:
            segments.append(["".join(literal)])
            literal = []
        alternatives = _split_top(inner)
        if len(alternatives) > 1:
            names: list[str] = []
            for alternative in alternatives:
                names.extend(expand_template(alternative))
            segments.append(names)
        else:
            seq = _sequence(group, inner)
            if seq is None:
                raise ValueError(
                    f"template {template!r}: invalid brace group {group!r} at position {i}; "
                    "expected a list like '{a,b}' or a sequence like '{0..9}', '{00..99..2}' or '{a..e}'"
                )
            segments.append(seq)
        i = end + 1
    if literal:
        segments.append(["".join(literal)])
    return segments


def expand_template(template: str) -> list[str]:
    """Every name ``template`` stands for, in bash brace-expansion order.

    Raises:
        ValueError: An unbalanced brace, a group that is neither a list nor a sequence, a
            zero step, or more than :data:`MAX_EXPANSION` names; the message names the part.
    """
    if not isinstance(template, str):
        raise TypeError(f"template must be a str, got {type(template).__name__}: {template!r}")
    segments = _segments(template)
    total = 1
    for segment in segments:
        total *= len(segment)
    if total > MAX_EXPANSION:
        raise ValueError(f"template {template!r} stands for {total} names; expected at most {MAX_EXPANSION}")
    return ["".join(parts) for parts in itertools.product(*segments)]


class ObjectCollection:
    """Names of some objects of one bucket; iterate to get them."""

    def __iter__(self) -> Iterator[str]:
        raise NotImplementedError

    def get_value(self) -> dict[str, object]:
        """The collection as the SDK's request value (``{"objnames": [...]}`` or ``{"template": ...}``)."""
        raise NotImplementedError


class ObjectNames(ObjectCollection):
    """An explicit list of object names.

    Args:
        names: The names, in order.

    Raises:
        ValueError: ``names`` holds something that is not a non-empty string.
    """

    def __init__(self, names: Sequence[str]) -> None:
        if isinstance(names, str):
            raise TypeError(f"names must be a list of str, got the str {names!r}")
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"object name {name!r} in names: expected a non-empty string")
        self._names = list(names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __str__(self) -> str:
        return str(self._names)

    def get_value(self) -> dict[str, object]:
        return {"objnames": list(self._names)}


class ObjectRange(ObjectCollection):
    """Names ``prefix + index + suffix`` for index from ``min_index`` to ``max_index`` by ``step``.

    With neither index, the range stands for every object whose name starts with
    ``prefix`` (a group lists the bucket for them).

    Args:
        prefix: Text before the index.
        min_index: First index (inclusive).
        max_index: Last index (inclusive).
        pad_width: Left-pad indices with zeros to this width (``3``: ``7`` -> ``007``).
        step: Distance between indices (> 0).
        suffix: Text after the index.

    Raises:
        ValueError: Only one index given, ``min_index > max_index``, a negative index,
            ``step < 1``, ``pad_width`` narrower than ``min_index`` or negative, or a
            suffix without indices.
    """

    def __init__(
        self,
        prefix: str,
        min_index: int | None = None,
        max_index: int | None = None,
        pad_width: int = 0,
        step: int = 1,
        suffix: str = "",
    ) -> None:
        if (min_index is None) != (max_index is None):
            raise ValueError(
                f"ObjectRange: min_index={min_index!r}, max_index={max_index!r}; expected both or neither"
            )
        if min_index is not None and max_index is not None:
            if min_index < 0 or max_index < 0:
                raise ValueError(f"ObjectRange: indices {min_index}..{max_index}; expected non-negative")
            if min_index > max_index:
                raise ValueError(f"ObjectRange: min_index {min_index} > max_index {max_index}")
            if pad_width and len(str(min_index)) > pad_width:
                raise ValueError(f"ObjectRange: min_index {min_index} is wider than pad_width {pad_width}")
        elif suffix:
            raise ValueError(f"ObjectRange: suffix {suffix!r} without indices; expected min_index/max_index")
        if pad_width < 0:
            raise ValueError(f"ObjectRange: pad_width {pad_width}; expected >= 0")
        if step < 1:
            raise ValueError(f"ObjectRange: step {step}; expected >= 1")
        self.prefix, self.min_index, self.max_index = prefix, min_index, max_index
        self.pad_width, self.step, self.suffix = pad_width, step, suffix

    @classmethod
    def from_string(cls, range_string: str) -> ObjectRange:
        """Parse ``"prefix{min..max[..step]}suffix"`` (e.g. ``"shard-{000..999}.tar"``).

        The pad width is the width of ``min`` as written.

        Raises:
            ValueError: Not exactly one ``{min..max[..step]}`` group of non-negative numbers.
        """
        match = re.fullmatch(r"([^{}]*)\{(\d+)\.\.(\d+)(?:\.\.(\d+))?\}([^{}]*)", range_string)
        if match is None:
            raise ValueError(
                f"range string {range_string!r}: expected 'prefix{{min..max}}suffix' or "
                "'prefix{min..max..step}suffix' with one group of non-negative numbers"
            )
        prefix, low, high, step, suffix = match.groups()
        return cls(prefix, int(low), int(high), len(low), int(step) if step else 1, suffix)

    def has_indices(self) -> bool:
        """True when the range has indices (False: it selects by ``prefix`` alone)."""
        return self.min_index is not None

    def __iter__(self) -> Iterator[str]:
        if self.min_index is None or self.max_index is None:
            raise ValueError(
                f"ObjectRange({self.prefix!r}) has no indices: it selects by prefix; list the bucket instead"
            )
        for index in range(self.min_index, self.max_index + 1, self.step):
            yield f"{self.prefix}{str(index).zfill(self.pad_width)}{self.suffix}"

    def __str__(self) -> str:
        if self.min_index is None or self.max_index is None:
            return self.prefix
        low, high = str(self.min_index).zfill(self.pad_width), str(self.max_index).zfill(self.pad_width)
        return f"{self.prefix}{{{low}..{high}..{self.step}}}{self.suffix}"

    def get_value(self) -> dict[str, object]:
        return {"template": str(self)}


class ObjectTemplate(ObjectCollection):
    """Names given by a bash brace-expansion template (see the module docs).

    Args:
        template: E.g. ``"shard-{000..999}.tar"`` or ``"{train,val}/part-{0..9..3}.bin"``.

    Raises:
        ValueError: The template is malformed (checked here, not on first use).
    """

    def __init__(self, template: str) -> None:
        self._names = expand_template(template)
        self.template = template

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __str__(self) -> str:
        return self.template

    def get_value(self) -> dict[str, object]:
        return {"template": self.template}
