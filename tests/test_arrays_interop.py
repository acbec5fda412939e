"""cottoncandy 0.4.0 and manystore.arrays read each other's arrays on the same S3 server."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.arrays import DefaultInterface, get_interface

from .conftest import s3_profile
from .cottoncandy_peer import available, run_cottoncandy
from .servers import S3Server

BUCKET = "manystore-test"
CODECS = ["False", "gzip", "LZ4", "Zlib", "Zstd", "BZ2"]
pytestmark = pytest.mark.skipif(not available(), reason="cottoncandy venv missing: run `make servers`")


def arrays() -> dict[str, np.ndarray]:
    base = np.arange(6 * 5 * 4, dtype=np.float64).reshape(6, 5, 4) / 7
    return {
        "f8": base,
        "f4F": np.asfortranarray(base.astype(np.float32)),
        "i2": (base * 100).astype(np.int16),
        "c16": base + 2j,
        "bool": base > 5,
        "dt": (base * 1e6).astype(np.int64).astype("datetime64[us]"),
    }


_MAKE = """
base = np.arange(6 * 5 * 4, dtype=np.float64).reshape(6, 5, 4) / 7
arrays = {"f8": base, "f4F": np.asfortranarray(base.astype(np.float32)), "i2": (base * 100).astype(np.int16),
          "c16": base + 2j, "bool": base > 5, "dt": (base * 1e6).astype(np.int64).astype("datetime64[us]")}
codecs = ["False", "gzip", "LZ4", "Zlib", "Zstd", "BZ2"]
"""


@pytest.fixture(params=["s3-rclone", "s3-moto"])
def server(request: pytest.FixtureRequest) -> S3Server:
    return request.getfixturevalue("moto_server" if request.param == "s3-moto" else "rclone_server")


def interface(server: S3Server, prefix: str) -> DefaultInterface:
    profile = s3_profile(server, BUCKET)
    return DefaultInterface(
        StorageClient(StorageClientConfig.from_dict({"profiles": {"t": profile}}, "t")), prefix
    )


def test_we_read_what_cottoncandy_wrote(server: S3Server) -> None:
    prefix = uuid.uuid4().hex
    run_cottoncandy(
        server,
        BUCKET,
        _MAKE
        + """
for name, arr in arrays.items():
    for codec in codecs:
        if name == "dt" and codec in ("False", "gzip"):
            continue  # cottoncandy's own limit: memoryview of datetime64 ("cannot include dtype 'M'")
        cci.upload_raw_array(f"{args['prefix']}/{name}-{codec}", arr, compression=False if codec == "False" else codec)
    cci.upload_npy_array(f"{args['prefix']}/{name}.npy", arr)
cci.upload_json(f"{args['prefix']}/d.json", {"a": [1, 2]})
""",
        prefix=prefix,
    )
    cci = interface(server, prefix)
    for name, arr in arrays().items():
        for codec in CODECS:
            if name == "dt" and codec in ("False", "gzip"):
                continue  # cottoncandy cannot write these (see above)
            got = cci.download_raw_array(f"{name}-{codec}")
            assert got.dtype == arr.dtype and got.shape == arr.shape, (name, codec)
            np.testing.assert_array_equal(got, arr)
        np.testing.assert_array_equal(cci.download_npy_array(f"{name}.npy"), arr)
    assert cci.download_json("d.json") == {"a": [1, 2]}


def test_cottoncandy_reads_what_we_wrote(server: S3Server) -> None:
    prefix = uuid.uuid4().hex
    cci = get_interface(
        f"{BUCKET}/{prefix}",
        ACCESS_KEY=server.access_key,
        SECRET_KEY=server.secret_key,
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        verbose=False,
    )
    for name, arr in arrays().items():
        for codec in CODECS:
            cci.upload_raw_array(f"{name}-{codec}", arr, compression=False if codec == "False" else codec)
        cci.upload_npy_array(f"{name}.npy", arr)
    cci.upload_json("d.json", {"a": [1, 2]})
    # Above ZSTD_MT_MIN zstd's worker threads compress: still one frame cottoncandy decodes.
    big = (np.arange(3 * 2**20, dtype=np.float32) % 4099).reshape(1024, -1)
    cci.upload_raw_array("big-zstd", big, compression="Zstd")
    result = run_cottoncandy(
        server,
        BUCKET,
        _MAKE
        + """
bad = []
for name, arr in arrays.items():
    for codec in codecs:
        got = cci.download_raw_array(f"{args['prefix']}/{name}-{codec}")
        if got.dtype != arr.dtype or got.shape != arr.shape or not np.array_equal(got, arr):
            bad.append(f"{name}-{codec}")
    got = cci.download_npy_array(f"{args['prefix']}/{name}.npy")
    if not np.array_equal(got, arr):
        bad.append(f"{name}.npy")
result["bad"] = bad
result["json"] = cci.download_json(f"{args['prefix']}/d.json")
result["checked"] = len(arrays) * (len(codecs) + 1)
big = cci.download_raw_array(f"{args['prefix']}/big-zstd")
result["big"] = [list(big.shape), str(big.dtype), bool((big.ravel() == np.arange(big.size, dtype=np.float32) % 4099).all())]
""",
        prefix=prefix,
    )
    assert result["bad"] == []
    assert result["checked"] == 42
    assert result["json"] == {"a": [1, 2]}
    assert result["big"] == [[1024, 3072], "float32", True]
