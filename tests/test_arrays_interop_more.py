"""cottoncandy 0.4.0 and manystore.arrays read each other's dask arrays, sparse matrices and groups (S3)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import scipy.sparse as sp

from manystore.arrays import DefaultInterface, get_interface

from .cottoncandy_peer import available, run_cottoncandy
from .servers import S3Server

BUCKET = "manystore-test"
pytestmark = pytest.mark.skipif(not available(), reason="cottoncandy venv missing: run `make servers`")
#: cottoncandy refuses chunks under 5 MiB (its minimum multipart size).
CHUNK = 5 * 2**20

_MAKE = """
import scipy.sparse as sp
big = (np.arange(16 * 100_000, dtype="<f8").reshape(16, 100_000) % 1000) / 8  # 12.2 MiB: 3 parts of 5 MiB
dense = np.zeros((6, 8)); dense[0, 1], dense[2, 3], dense[5, 7], dense[4, 0] = 1.5, -2.0, 3.25, 7.0
mats = {f: sp.csr_matrix(dense).asformat(f) for f in ("csr", "csc", "coo", "bsr", "dia")}
group = {"a": np.arange(5, dtype="<i4"), "sub": {"b": np.eye(2), "deeper": {"c": np.array([True, False])}}}
"""


def expected() -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    big = (np.arange(16 * 100_000, dtype="<f8").reshape(16, 100_000) % 1000) / 8
    dense = np.zeros((6, 8))
    dense[0, 1], dense[2, 3], dense[5, 7], dense[4, 0] = 1.5, -2.0, 3.25, 7.0
    group = {
        "a": np.arange(5, dtype="<i4"),
        "sub": {"b": np.eye(2), "deeper": {"c": np.array([True, False])}},
    }
    return big, dense, group


@pytest.fixture(params=["s3-rclone", "s3-moto"])
def server(request: pytest.FixtureRequest) -> S3Server:
    return request.getfixturevalue("moto_server" if request.param == "s3-moto" else "rclone_server")


def ours(server: S3Server, prefix: str) -> DefaultInterface:
    """Our interface on ``bucket/prefix`` (cottoncandy sits at the bucket's root)."""
    return get_interface(
        f"{BUCKET}/{prefix}",
        ACCESS_KEY=server.access_key,
        SECRET_KEY=server.secret_key,
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        verbose=False,
    )


def test_we_read_cottoncandys_dask_sparse_and_groups(server: S3Server) -> None:
    prefix = uuid.uuid4().hex
    result = run_cottoncandy(
        server,
        BUCKET,
        _MAKE
        + """
p = args["prefix"]
cci.upload_dask_array(f"{p}/big", big, axis=-1, buffersize=args["chunk"])
for f, m in mats.items():
    cci.upload_sparse_array(f"{p}/m_{f}", m)
cci.upload_sparse_array(f"{p}/m_lil", sp.lil_matrix(dense))
cci.dict2cloud(f"{p}/run.grp", group, verbose=False)
result["metadata"] = json.loads(cci.download_object(f"{p}/big/metadata.json").decode())
""",
        prefix=prefix,
        chunk=CHUNK,
    )
    big, dense, group = expected()
    cci = ours(server, prefix)
    meta = json.loads(cci._get("big/metadata.json"))
    assert meta == result["metadata"] and len(meta["dask"]) == 4  # 3 parts + cottoncandy's empty one
    lazy = cci.download_dask_array("big")
    np.testing.assert_array_equal(np.asarray(lazy[:, 70_000:70_010]), big[:, 70_000:70_010])
    np.testing.assert_array_equal(lazy.compute(), big)
    for fmt in ("csr", "csc", "coo", "bsr", "dia", "lil"):
        got = cci.download_sparse_array(f"m_{fmt}")
        assert got.format == ("csr" if fmt == "lil" else fmt)
        np.testing.assert_array_equal(got.toarray(), dense)
    got_group = cci.cloud2dict("run.grp", verbose=False)
    np.testing.assert_array_equal(got_group["a"], group["a"])  # type: ignore[arg-type]
    np.testing.assert_array_equal(got_group["sub"]["deeper"]["c"], [True, False])
    assert cci.cloud2dataset("run.grp").keys() == ["a", "sub"]


def test_cottoncandy_reads_our_dask_sparse_and_groups(server: S3Server) -> None:
    prefix = uuid.uuid4().hex
    big, dense, group = expected()
    cci = ours(server, prefix)
    cci.upload_dask_array("big", big, axis=-1, buffersize=CHUNK)
    for fmt in ("csr", "csc", "coo", "bsr", "dia"):
        cci.upload_sparse_array(f"m_{fmt}", sp.csr_matrix(dense).asformat(fmt))
    cci.upload_sparse_array("m_dok", sp.dok_matrix(dense))
    cci.dict2cloud("run.grp", group, verbose=False)
    result = run_cottoncandy(
        server,
        BUCKET,
        _MAKE
        + """
p = args["prefix"]
bad = []
lazy = cci.download_dask_array(f"{p}/big")
if not np.array_equal(np.asarray(lazy), big):
    bad.append("big")
for f in ("csr", "csc", "coo", "bsr", "dia", "dok"):
    got = cci.download_sparse_array(f"{p}/m_{f}")
    if got.format != ("csr" if f == "dok" else f) or not np.array_equal(got.toarray(), dense):
        bad.append(f"m_{f}")
d = cci.cloud2dict(f"{p}/run.grp", verbose=False)
if not (np.array_equal(d["a"], group["a"]) and np.array_equal(d["sub"]["b"], group["sub"]["b"])
        and np.array_equal(d["sub"]["deeper"]["c"], group["sub"]["deeper"]["c"])):
    bad.append("group")
result["bad"] = bad
result["metadata"] = json.loads(cci.download_object(f"{p}/big/metadata.json").decode())
cci.upload_dask_array(f"{p}/big_cc", big, axis=-1, buffersize=args["chunk"])
result["cc_metadata"] = json.loads(cci.download_object(f"{p}/big_cc/metadata.json").decode())
""",
        prefix=prefix,
        chunk=CHUNK,
    )
    assert result["bad"] == []
    # the same array and chunk size give the same metadata.json (part names aside)
    ours_meta, theirs = result["metadata"], result["cc_metadata"]
    assert [part for _, part in ours_meta["dask"]] == [f"{prefix}/big/pt{i:04d}" for i in range(4)]
    for meta in (ours_meta, theirs):
        meta["dask"] = [coords for coords, _ in meta["dask"]]
    assert ours_meta == theirs
    # byte for byte, once the part names are swapped
    assert cci._get("big/metadata.json").replace(b"/big/pt", b"/big_cc/pt") == cci._get(
        "big_cc/metadata.json"
    )
