"""Running one benchmark cell in a fresh interpreter (``python -m MODULE JSON``), shared by S11 and S12."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_json_child(
    module: str, spec: dict, python: str | None, extra_env: dict[str, str] | None = None
) -> dict:
    """Run ``python -m module JSON(spec)`` and return the JSON object its last stdout line holds.

    ``python`` is a venv interpreter relative to the repository (``None``: this one). The child
    gets the endpoint's credentials in the ``AWS_*`` environment, no ``AWS_ENDPOINT_URL``, and,
    in a foreign venv, only this repository's ``bench`` package on its path. A child that prints
    no JSON gives ``{"error": ...}`` with the first panic line or the last line of its output.
    """
    exe = sys.executable if python is None else str(REPO / python)
    if not os.path.exists(exe):
        return {"error": f"{python} missing: run `make bench` (it creates the venv)"}
    env = dict(os.environ)
    ep = spec["endpoint"]
    env.update(AWS_ACCESS_KEY_ID=ep["access_key"], AWS_SECRET_ACCESS_KEY=ep["secret_key"])
    env.update(AWS_REGION=ep["region"], AWS_DEFAULT_REGION=ep["region"])
    env.pop("AWS_ENDPOINT_URL", None)
    if python is not None:  # a foreign venv: this repo's bench package only, no manystore
        env["PYTHONPATH"] = str(REPO)
    env.update(extra_env or {})
    try:
        proc = subprocess.run(
            [exe, "-m", module, json.dumps(spec)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    lines = proc.stdout.strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, json.JSONDecodeError):
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        # A Rust panic's message is above its backtrace hint.
        tail = [line for line in lines if "panicked" in line][:1] or lines[-1:] or ["no output"]
        return {"error": f"child exited {proc.returncode}: {tail[0][:200]}"}
