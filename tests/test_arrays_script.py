"""A cottoncandy user's script runs unchanged but for its import.

One script, written the way cottoncandy's documentation uses it (``cc.get_interface`` with
keys, an endpoint and a botocore ``Config``; raw, compressed and ``.npy`` arrays; json; a
nested dict of arrays; a dask array; sparse; ``glob``/``ls``/``cp``/``mv``/``rm``; the
browser; the interface constructed directly), runs once with ``import cottoncandy as cc``
in cottoncandy 0.4.0's venv and once with ``import manystore.arrays as cc`` here, each on
its own prefix of the same S3 server (rclone). Both print a JSON summary of what they read
back and listed: the two must be equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from .cottoncandy_peer import CC_PYTHON, available
from .servers import S3Server

pytest.importorskip("dask", reason="the arrays extra (dask) is not installed")
pytest.importorskip("scipy", reason="the arrays extra (scipy) is not installed")
pytestmark = pytest.mark.skipif(not available(), reason="cottoncandy venv missing: run `make servers`")

BUCKET = "manystore-test"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import scipy.sparse
    from botocore.client import Config
    {import_line}

    bucket, access, secret, endpoint, prefix = sys.argv[1:6]
    cci = cc.get_interface(bucket, ACCESS_KEY=access, SECRET_KEY=secret, endpoint_url=endpoint,
                           verbose=False, config=Config(signature_version="s3v4", connect_timeout=50, read_timeout=600))
    p = prefix + "/exp"
    arr = (np.arange(20 * 30, dtype=np.float32).reshape(20, 30) / 7).astype(np.float32)
    cci.upload_raw_array(p + "/raw", arr, compression=False)
    cci.upload_raw_array(p + "/gz", arr)
    cci.upload_raw_array(p + "/zstd", arr, compression="Zstd")
    cci.upload_npy_array(p + "/arr.npy", arr)
    cci.upload_json(p + "/info.json", {{"subject": "S1", "runs": [1, 2, 3]}})
    cci.dict2cloud(p + "/results.grp", {{"weights": arr[:2], "meta": {{"ids": np.arange(4)}}}}, verbose=False)
    big = np.arange(1600 * 1000, dtype=np.float32).reshape(1600, 1000)
    cci.upload_dask_array(p + "/big", big, axis=0, buffersize=5 * 2**20)
    cci.upload_sparse_array(p + "/sp", scipy.sparse.random(30, 40, density=0.1, format="csr", random_state=1))
    back = cci.cloud2dict(p + "/results.grp", verbose=False)
    dsk = cci.download_dask_array(p + "/big")
    cci.cp(p + "/raw", p + "/raw-copy")
    cci.mv(p + "/raw-copy", p + "/raw-moved")
    cci.rm(p + "/gz")
    before_rm = sorted(cci.glob(p + "/*"))
    cci.rm(p + "/results.grp", recursive=True)
    direct = cc.interfaces.DefaultInterface(bucket, access, secret, endpoint, verbose=False)
    summary = {{
        "raw": cci.download_raw_array(p + "/raw").tolist(),
        "zstd_equal": bool(np.array_equal(cci.download_raw_array(p + "/zstd"), arr)),
        "npy_equal": bool(np.array_equal(cci.download_npy_array(p + "/arr.npy"), arr)),
        "json": cci.download_json(p + "/info.json"),
        "group": [back["weights"].tolist(), back["meta"]["ids"].tolist()],
        "dask": [list(dsk.shape), list(dsk.chunks[0]), float(np.asarray(dsk[1300:1400, 2:5]).sum())],
        "sparse": float(cci.download_sparse_array(p + "/sp").sum()),
        "moved": cci.exists_object(p + "/raw-moved") and not cci.exists_object(p + "/raw-copy"),
        "listing": [name[len(prefix) + 1:] for name in before_rm],
        "after_rm": sorted(name[len(prefix) + 1:] for name in cci.glob(p + "/*")),
        "direct": bool(np.array_equal(direct.download_raw_array(p + "/raw"), arr)),
    }}
    print("@@" + json.dumps(summary))
    """
)


def _run(python: str, import_line: str, server: S3Server, prefix: str, tmp_path: Path) -> dict:
    script = tmp_path / f"script-{uuid.uuid4().hex}.py"
    script.write_text(SCRIPT.format(import_line=import_line))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHONPATH"))}
    env["AWS_DEFAULT_REGION"] = getattr(server, "region", "us-east-1")
    if "manystore" in import_line:
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [python, str(script), BUCKET, server.access_key, server.secret_key, server.endpoint_url, prefix],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("@@"))
    return dict(json.loads(line[2:]))


def test_a_cottoncandy_script_runs_with_only_the_import_changed(
    rclone_server: S3Server, tmp_path: Path
) -> None:
    theirs = _run(str(CC_PYTHON), "import cottoncandy as cc", rclone_server, uuid.uuid4().hex, tmp_path)
    ours = _run(sys.executable, "import manystore.arrays as cc", rclone_server, uuid.uuid4().hex, tmp_path)
    assert ours == theirs
    assert theirs["moved"] and theirs["direct"] and "exp/results.grp" not in " ".join(theirs["after_rm"])
