"""The arrays step of ``make demo``: numpy arrays as objects, cottoncandy style (``python -m manystore.arrays.demo``).

Usage: ``python -m manystore.arrays.demo CONFIG URL``. With ``MSC_CONFIG=CONFIG``, it opens a
cottoncandy-style interface on ``URL`` (any manystore URL prefix), uploads a 32 MiB float32
array raw (streamed from the array's own buffer) and gzip-compressed, a nested dict of arrays
as a group, downloads all of them (the raw one straight into a preallocated array), checks
every value and prints what it did and how fast. Needs numpy (``manystore[arrays]``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

#: Elements of the demo array (float32: 32 MiB).
ELEMENTS = 8 * 1024 * 1024


def _row(step: str, nbytes: int, seconds: float, note: str) -> None:
    print(
        f"{step:<14} {nbytes / 1e6:>8.1f}MB {seconds * 1000:>8.1f}ms {nbytes / 1e6 / max(seconds, 1e-9):>8.0f}MB/s  {note}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the step; returns 0 when every array read back equals the one written.

    Args:
        argv: ``[CONFIG, URL]`` (default: ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m manystore.arrays.demo CONFIG URL", file=sys.stderr)
        return 2
    os.environ["MSC_CONFIG"] = args[0]
    import numpy as np

    from .interface import get_interface

    cci = get_interface(args[1], verbose=False)
    rng = np.random.default_rng(0)
    array = rng.standard_normal(ELEMENTS, dtype=np.float32).reshape(2048, -1)
    ok = True
    print(f"\narrays (cottoncandy interface on {args[1]}):")
    for name, compression in (("raw", False), ("gzip", "gzip")):
        start = time.perf_counter()
        cci.upload_raw_array(f"demo/{name}", array, compression=compression)
        _row(
            f"upload {name}",
            array.nbytes,
            time.perf_counter() - start,
            f"upload_raw_array(compression={compression!r})",
        )
        start = time.perf_counter()
        back = cci.download_raw_array(f"demo/{name}")
        same = back.shape == array.shape and back.dtype == array.dtype and bool(np.array_equal(back, array))
        ok = ok and same
        _row(f"download {name}", array.nbytes, time.perf_counter() - start, "equal" if same else "DIFFERENT")
    group: dict[str, Any] = {
        "weights": {"w1": array[:16], "b1": np.arange(16, dtype=np.int64)},
        "labels": np.arange(10),
    }
    start = time.perf_counter()
    cci.dict2cloud("demo/group", group, verbose=False)
    back_group: Any = cci.cloud2dict("demo/group", verbose=False)
    same = (
        bool(np.array_equal(back_group["weights"]["w1"], group["weights"]["w1"]))
        and bool(np.array_equal(back_group["weights"]["b1"], group["weights"]["b1"]))
        and bool(np.array_equal(back_group["labels"], group["labels"]))
    )
    ok = ok and same
    group_bytes = array[:16].nbytes + 16 * 8 + 10 * 8
    _row(
        "dict group",
        group_bytes,
        time.perf_counter() - start,
        f"dict2cloud + cloud2dict: {'equal' if same else 'DIFFERENT'}",
    )
    print(f"objects: {', '.join(cci.glob('demo/**'))}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
