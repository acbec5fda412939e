"""manystore's public API matches multi-storage-client 1.3.1's, except the documented differences.

The reference surface is printed by ``tests/msc_surface.py`` run with the interpreter of a
separate venv holding ``multi-storage-client==1.3.1`` (``make .tools/msc-venv``); the same
map is computed here for manystore. Every difference must be a row of the table in
``docs/msc-compatibility.md`` (first column: the dotted name), and every row must still be
a difference. A row naming something missing as a whole (``X``) also covers its parameters
and members (``X(p)``, ``X.m``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.msc_surface import compare, surface

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "msc-compatibility.md"
SCRIPT = ROOT / "tests" / "msc_surface.py"
MSC_PYTHON = Path(os.environ.get("MANYSTORE_MSC_PYTHON", ROOT / ".tools" / "msc-venv" / "bin" / "python"))
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    if not MSC_PYTHON.exists():
        pytest.fail(
            f"the reference interpreter {MSC_PYTHON} does not exist: create the venv with "
            "`make .tools/msc-venv` (python3 -m venv .tools/msc-venv && .tools/msc-venv/bin/pip "
            "install multi-storage-client==1.3.1) or point MANYSTORE_MSC_PYTHON at a Python that has it"
        )
    done = subprocess.run(
        [str(MSC_PYTHON), str(SCRIPT), "multistorageclient"], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, str] = json.loads(done.stdout)
    return data


def documented() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} is listed twice in {DOC.name}"
            rows[match.group(1)] = line
    return rows


def covered(key: str, listed: dict[str, str]) -> bool:
    """``key`` is listed, or belongs to a listed missing name (``X`` covers ``X(p)`` and ``X.m``)."""
    if key in listed:
        return True
    return any(key.startswith(row + "(") or key.startswith(row + ".") for row in listed)


def test_reference_surface_is_complete(reference: dict[str, str]) -> None:
    """The introspection saw the parts of 1.3.1 it is meant to compare."""
    for key in (
        "StorageClient.list(path)",
        "types.MSC_PROTOCOL",
        "sync(execution_mode)",
        "contrib.os.makedirs",
    ):
        assert key in reference, key
    assert reference["StorageClient.list"] == "method"


def test_surface_matches_reference(reference: dict[str, str]) -> None:
    diffs = compare(reference, surface("manystore"))
    listed = documented()
    undocumented = {k: v for k, v in diffs.items() if not covered(k, listed)}
    stale = sorted(k for k in listed if k not in diffs)
    message = []
    if undocumented:
        message.append(
            f"{len(undocumented)} difference(s) from multi-storage-client 1.3.1 not listed in "
            f"docs/msc-compatibility.md (implement them, or add a row with the reason):\n"
            + "\n".join(f"  {k}: {v}" for k, v in sorted(undocumented.items()))
        )
    if stale:
        message.append(
            "stale rows in docs/msc-compatibility.md (no longer a difference):\n  " + "\n  ".join(stale)
        )
    assert not message, "\n".join(message)


def test_compare_reports_each_kind_of_difference() -> None:
    reference = {"f": "function", "f(a)": "POSITIONAL_OR_KEYWORD@0", "f(b)": "POSITIONAL_OR_KEYWORD@1=1"}
    ours = {
        "f": "function",
        "f(a)": "POSITIONAL_OR_KEYWORD@0",
        "f(b)": "POSITIONAL_OR_KEYWORD@1=2",
        "f(c)": "KEYWORD_ONLY=3",
    }
    assert compare(reference, ours) == {
        "f(b)": "reference POSITIONAL_OR_KEYWORD@1=1, manystore POSITIONAL_OR_KEYWORD@1=2"
    }
    ours["f(d)"] = "POSITIONAL_OR_KEYWORD@2=None"  # appended after the reference's positionals: compatible
    ours["f(e)"] = "POSITIONAL_OR_KEYWORD@1"  # no default: a reference call would not bind it
    del ours["f(a)"]
    assert set(compare(reference, ours)) == {"f(a)", "f(b)", "f(e)"}
    reference["f(args)"] = (
        "VAR_POSITIONAL"  # with *args in the reference, an appended positional captures them
    )
    assert "f(d)" in compare(reference, ours)
