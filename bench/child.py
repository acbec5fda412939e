"""Run one large-object measurement in a fresh process and print JSON on stdout.

``python -m bench.child JSON`` where JSON holds: lib, op (put|get|range|stream), key,
size, chunk, threads, repeats and the endpoint. Prints ``{"seconds": [...], "rss_mib": N}``
where ``rss_mib`` is the peak RSS of this process (see :func:`_maxrss_bytes`) minus its
peak RSS right before the first timed repetition (after imports, client creation and, for ``put``, allocating the
payload). A failure prints ``{"error": "..."}`` and exits 0 so the parent can report it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.libs import Endpoint, make_s3


def _maxrss_bytes() -> int:
    """Peak RSS of this process.

    On Linux ``ru_maxrss`` survives fork+exec (a child starts with its parent's high-water
    mark, which would hide everything below the parent's size), so the per-address-space
    ``VmHWM`` from ``/proc/self/status`` is used there; ``ru_maxrss`` elsewhere.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def payload(size: int) -> bytes:
    """``size`` incompressible-looking bytes, every page touched (counts in RSS)."""
    block = os.urandom(1 << 20)
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]


def measure(spec: dict) -> dict:
    ep = Endpoint(**spec["endpoint"])
    lib = make_s3(spec["lib"], ep)
    op, key, size, chunk = spec["op"], spec["key"], spec["size"], spec["chunk"]
    data = payload(size) if op == "put" else b""
    base = _maxrss_bytes()

    def once() -> None:
        if op == "put":
            lib.put(key, data)
        elif op == "get":
            got = len(lib.get(key))
            if got != size:
                raise RuntimeError(f"read {got} bytes, expected {size}")
        elif op == "range":
            offsets = range(0, size, chunk)

            def fetch(off: int) -> int:
                return len(lib.get_range(key, off, min(chunk, size - off)))

            with ThreadPoolExecutor(spec["threads"]) as pool:
                got = sum(pool.map(fetch, offsets))
            if got != size:
                raise RuntimeError(f"ranged reads returned {got} bytes, expected {size}")
        elif op == "stream":
            got = lib.stream(key, chunk)
            if got != size:
                raise RuntimeError(f"streamed {got} bytes, expected {size}")
        else:
            raise ValueError(op)

    seconds = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        once()
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "rss_mib": max(0, _maxrss_bytes() - base) / (1 << 20)}


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        result = measure(spec)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
