"""Arrays over 2 GiB: the codecs round-trip one; LZ4 refuses clearly.

cottoncandy refused gzip above 2 GiB. Here gzip, Zlib, BZ2, Zstd and the raw (uncompressed)
path stream in chunks and take any size (gzip is accepted above 2 GiB; it runs at zlib's
~200 MB/s, too slow to round-trip 2 GiB in the suite: its streaming code is the one the
smaller gzip tests run); LZ4 (one block) raises a ``ValueError`` naming the codec and its
limit before anything is stored. The arrays are
mostly zero pages (cheap to make and to compress) with marks on both sides of the 2 GiB
boundary and at the ends, so a lost or shifted chunk shows. On the file backend every such codec;
on S3 (rclone: it stores on disk; moto would hold 2 GiB in its memory) raw, through a
real multipart upload and parallel ranged GETs, and Zstd.
"""

from __future__ import annotations

from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="the arrays extra (numpy) is not installed")

from manystore.arrays import DefaultInterface  # noqa: E402
from manystore.arrays.codecs import LZ4_LIMIT  # noqa: E402

from .conftest import make_backend  # noqa: E402

SIZE = (2 << 30) + (3 << 20) + 17  # a little over 2 GiB, not a multiple of any chunk size
MARKS = (0, (2 << 30) - 1, 2 << 30, (2 << 30) + 1, SIZE // 3, SIZE - 1)


def _big() -> np.ndarray:
    arr = np.zeros(SIZE, dtype=np.uint8)
    for i, pos in enumerate(MARKS):
        arr[pos] = 1 + i
    return arr


@pytest.mark.parametrize(
    ("name", "codecs"),
    [("file", (False, "Zstd")), ("s3-rclone", (False,))],
)
def test_over_2_gib_round_trips(
    name: str, codecs: tuple[str | bool, ...], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = make_backend(name, request, tmp_path)
    cci = DefaultInterface(backend.client, "big")
    arr = _big()
    for compression in codecs:
        cci.upload_raw_array("a", arr, compression=compression)
        back = cci.download_raw_array("a")
        assert back.shape == (SIZE,) and back.dtype == np.uint8, compression
        assert [int(back[p]) for p in MARKS] == [1 + i for i in range(len(MARKS))], compression
        assert int(np.count_nonzero(back)) == len(MARKS), compression
        del back
        backend.client.delete("big/a")  # 2 GiB on disk: freed at once, not at the session's end
        assert not cci.exists_object("a")
    with pytest.raises(ValueError, match="LZ4") as err:
        cci.upload_raw_array("lz4", arr, compression="LZ4")
    assert str(LZ4_LIMIT) in str(err.value)
    assert not cci.exists_object("lz4")


def test_every_streaming_codec_accepts_over_2_gib() -> None:
    from manystore.arrays import codecs

    for codec in ("gzip", "Zlib", "BZ2", "Zstd"):
        assert codecs.resolve(codec, SIZE) == codec
    assert codecs.resolve(True, SIZE) == "Zstd"  # cottoncandy's default above 2 GiB
    with pytest.raises(ValueError, match="LZ4"):
        codecs.resolve("LZ4", SIZE)
