"""Many objects at once: object groups, archives, Get-Batch, resumable readers and ETL.

Home of the AIStore SDK's multi-object API on every backend. It builds on the
core client and the sync engine's executors and imports nothing from the other
ML layers. See ``docs/batch.md`` and ``docs/architecture.md``.

The names are imported lazily: ``import manystore.batch`` loads nothing else until a
name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .archive import (
        ArchiveConfig,
        ArchiveMember,
        ArchiveMemberNotFoundError,
        ArchiveMode,
        ArchiveWriter,
        ObjectSource,
        extract,
        iter_members,
        list_archive,
        read_member,
        write_archive,
    )
    from .archreader import ArchiveReader
    from .bucket import Bucket
    from .client import Client
    from .etl import Etl, ETLDetails, ETLInfo, ETLServer, FastAPIServer, FlaskServer, HTTPMultiThreadedServer
    from .etl_apply import ETLConfig, EtlObjectReader
    from .getbatch import BatchItem, BatchItemInfo, BatchStats, BatchStream, GetBatch, get_batch
    from .group import ObjectGroup
    from .jobs import Job, JobStatus, WaitResult
    from .obj import Object
    from .props import BucketEntry, BucketList, ListObjectFlag, ObjectAttributes, ObjectProps
    from .reader import (
        ObjectFileReader,
        ObjectFileReaderMaxResumeError,
        ObjectFileReaderStreamError,
        ObjectReader,
    )
    from .sdkbatch import Batch
    from .templates import ObjectNames, ObjectRange, ObjectTemplate
    from .writer import ObjectFileWriter, ObjectWriter

_EXPORTS = {
    "ArchiveReader": "archreader",
    "Batch": "sdkbatch",
    "ListObjectFlag": "props",
    "Bucket": "bucket",
    "BucketEntry": "props",
    "BucketList": "props",
    "Client": "client",
    "ETLConfig": "etl_apply",
    "ETLDetails": "etl",
    "ETLInfo": "etl",
    "ETLServer": "etl",
    "Etl": "etl",
    "EtlObjectReader": "etl_apply",
    "FastAPIServer": "etl",
    "FlaskServer": "etl",
    "HTTPMultiThreadedServer": "etl",
    "Job": "jobs",
    "JobStatus": "jobs",
    "Object": "obj",
    "ObjectAttributes": "props",
    "ObjectFileReader": "reader",
    "ObjectFileReaderMaxResumeError": "reader",
    "ObjectFileReaderStreamError": "reader",
    "ObjectFileWriter": "writer",
    "ObjectGroup": "group",
    "ObjectNames": "templates",
    "ObjectProps": "props",
    "ObjectRange": "templates",
    "ObjectReader": "reader",
    "ObjectTemplate": "templates",
    "ObjectWriter": "writer",
    "WaitResult": "jobs",
    "ArchiveConfig": "archive",
    "ArchiveMember": "archive",
    "ArchiveMemberNotFoundError": "archive",
    "ArchiveMode": "archive",
    "ArchiveWriter": "archive",
    "ObjectSource": "archive",
    "extract": "archive",
    "iter_members": "archive",
    "list_archive": "archive",
    "read_member": "archive",
    "write_archive": "archive",
    "BatchItem": "getbatch",
    "BatchItemInfo": "getbatch",
    "BatchStats": "getbatch",
    "BatchStream": "getbatch",
    "GetBatch": "getbatch",
    "get_batch": "getbatch",
}

__all__ = [
    "ArchiveReader",
    "Batch",
    "ListObjectFlag",
    "Bucket",
    "BucketEntry",
    "BucketList",
    "Client",
    "ETLConfig",
    "ETLDetails",
    "ETLInfo",
    "ETLServer",
    "Etl",
    "EtlObjectReader",
    "FastAPIServer",
    "FlaskServer",
    "HTTPMultiThreadedServer",
    "Job",
    "JobStatus",
    "Object",
    "ObjectAttributes",
    "ObjectFileReader",
    "ObjectFileReaderMaxResumeError",
    "ObjectFileReaderStreamError",
    "ObjectFileWriter",
    "ObjectGroup",
    "ObjectNames",
    "ObjectProps",
    "ObjectRange",
    "ObjectReader",
    "ObjectTemplate",
    "ObjectWriter",
    "WaitResult",
    "ArchiveConfig",
    "ArchiveMember",
    "ArchiveMemberNotFoundError",
    "ArchiveMode",
    "ArchiveWriter",
    "ObjectSource",
    "extract",
    "iter_members",
    "list_archive",
    "read_member",
    "write_archive",
    "BatchItem",
    "BatchItemInfo",
    "BatchStats",
    "BatchStream",
    "GetBatch",
    "get_batch",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'manystore.batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
