"""universal-pathlib's ``UPath`` for ``msc://`` URLs.

``UPath("msc://profile/dir/file.bin")`` gives a :class:`MultiStorageUPath`: a cloud-style
path whose first component is the profile (as a bucket is for ``s3://``), backed by
:class:`manystore.contrib.async_fs.MultiStorageAsyncFileSystem`. It is registered through
the ``universal_pathlib.implementations`` entry point, so no manystore import is needed::

    from upath import UPath

    p = UPath("msc://train/shards") / "000.tar"
    p.write_bytes(b"...")
    print([child.name for child in p.parent.iterdir()])
"""

from __future__ import annotations

from upath.implementations.cloud import CloudPath

__all__ = ["MultiStorageUPath"]


class MultiStorageUPath(CloudPath):
    """A ``UPath`` over ``msc://profile/key`` URLs (the profile plays the bucket's part)."""

    __slots__ = ()
