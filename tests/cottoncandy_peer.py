"""Run cottoncandy 0.4.0 (its own venv) against a test S3 server: the interop peer.

:func:`run_cottoncandy` executes a snippet in ``.tools/cottoncandy-venv`` with ``cci``
bound to ``cottoncandy.get_interface(bucket, ...)`` on the server and returns what the
snippet put in the dict ``result`` (JSON). Shared by the arrays interop tests and benches.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The peer's interpreter: this checkout's venv, else the main checkout's.
CC_PYTHON = next(
    (
        p
        for p in (
            ROOT / ".tools/cottoncandy-venv/bin/python",
            Path("/work/main/.tools/cottoncandy-venv/bin/python"),
        )
        if p.exists()
    ),
    ROOT / ".tools/cottoncandy-venv/bin/python",
)

_PRELUDE = """
import json, sys, os
import numpy as np
import cottoncandy as cc
args = json.loads(sys.argv[1])
cci = cc.get_interface(args["bucket"], ACCESS_KEY=args["access_key"], SECRET_KEY=args["secret_key"],
                       endpoint_url=args["endpoint_url"], verbose=False)
result = {}
"""
_EPILOGUE = """
sys.stdout.write("\\n@@RESULT@@" + json.dumps(result))
"""


def available() -> bool:
    """True when the cottoncandy venv exists (``make servers`` builds it)."""
    return CC_PYTHON.exists()


def run_cottoncandy(
    server: Any, bucket: str, code: str, timeout: float = 600, **values: Any
) -> dict[str, Any]:
    """Run ``code`` in cottoncandy's venv with ``cci`` on ``bucket`` of ``server``; its ``result`` dict.

    ``values`` are available to the snippet as ``args[...]``.

    Raises:
        RuntimeError: The snippet failed (its stderr is in the message).
    """
    args = {
        "bucket": bucket,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "endpoint_url": server.endpoint_url,
        **values,
    }
    script = _PRELUDE + textwrap.dedent(code) + _EPILOGUE
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHONPATH"))}
    env["AWS_DEFAULT_REGION"] = getattr(server, "region", "us-east-1")
    env["HOME"] = env.get("HOME", "/tmp")
    proc = subprocess.run(
        [str(CC_PYTHON), "-c", script, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0 or "@@RESULT@@" not in proc.stdout:
        raise RuntimeError(f"cottoncandy snippet failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.rsplit("@@RESULT@@", 1)[1]))
