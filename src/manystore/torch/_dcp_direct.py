"""Copy a DCP item's tensor bytes straight into the target tensor, without ``torch.load``.

torch's DCP writer stores each tensor as a ``torch.save`` archive: a zip whose ``data.pkl``
describes the tensor and whose ``data/<n>`` record holds its storage, uncompressed. When the
record is exactly the target's bytes in the target's layout (same dtype, contiguous, no
offset, the whole tensor wanted, the machine's byte order), the bytes are copied once, from
the fetched buffers into the target's memory: ``torch.load`` followed by ``copy_`` copies them
twice and builds a tensor per item. Anything else returns ``False`` and the caller takes the
general path, so the result is always what ``torch.load`` + ``copy_`` would give.
"""

from __future__ import annotations

import ctypes
import io
import pickle
import struct
import sys
import zipfile
from typing import Any

import torch

__all__ = ["copy_into"]

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"
#: Largest ``data.pkl`` read here (a single tensor's is a few hundred bytes).
_MAX_PICKLE = 64 << 10


class _Refused(Exception):
    """The archive is not one this fast path serves."""


class _Rebuild:
    def __init__(self, *args: Any) -> None:
        self.args = args


class _Storage:
    def __init__(self, pid: tuple[Any, ...]) -> None:
        self.pid = pid


class _Unpickler(pickle.Unpickler):
    """Reads ``data.pkl`` of a single-tensor archive into inert records (imports nothing)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _Rebuild
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch" and name.endswith("Storage"):
            return name
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        return _Storage(tuple(pid))


def _contiguous_strides(size: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(size):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))


def _record_offset(raw: Any, info: zipfile.ZipInfo) -> int:
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
        raise _Refused("bad local header")
    fields = _LOCAL_HEADER.unpack(header)
    return int(info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10])


def copy_into(raw: Any, target: torch.Tensor) -> bool:
    """Fill ``target`` from the ``torch.save`` archive ``raw`` (seekable) if its bytes fit as is.

    Returns:
        True when ``target`` was filled; False (nothing written) when the archive needs
        ``torch.load`` (another dtype or layout, compression, a partial view...).
    """
    if target.device.type != "cpu" or not target.is_contiguous() or target.numel() == 0:
        return False
    nbytes = target.numel() * target.element_size()
    try:
        with zipfile.ZipFile(raw) as archive:
            infos = archive.infolist()
            pkl = [i for i in infos if i.filename.endswith("/data.pkl")]
            data = [i for i in infos if "/data/" in i.filename]
            order = [i for i in infos if i.filename.endswith("/byteorder")]
            if len(pkl) != 1 or len(data) != 1 or pkl[0].file_size > _MAX_PICKLE:
                return False
            record = data[0]
            if record.compress_type != zipfile.ZIP_STORED or record.file_size != nbytes:
                return False
            if order and archive.read(order[0]).decode() != sys.byteorder:
                return False
            if not order and sys.byteorder != "little":
                return False
            rebuilt = _Unpickler(io.BytesIO(archive.read(pkl[0]))).load()
        if not isinstance(rebuilt, _Rebuild) or len(rebuilt.args) < 4:
            return False
        storage, storage_offset, size, stride = rebuilt.args[:4]
        if not isinstance(storage, _Storage) or len(storage.pid) < 3:
            return False
        storage_type, key = storage.pid[1], str(storage.pid[2])
        if record.filename.rsplit("/", 1)[-1] != key or storage_offset != 0:
            return False
        if tuple(size) != tuple(target.shape) or tuple(stride) != _contiguous_strides(tuple(size)):
            return False
        kind = getattr(torch, storage_type, None) if isinstance(storage_type, str) else None
        if kind is None or getattr(kind, "dtype", None) != target.dtype:
            return False
        start = _record_offset(raw, record)
    except (_Refused, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, EOFError, TypeError):
        return False
    dest = memoryview((ctypes.c_char * nbytes).from_address(target.data_ptr())).cast("B")
    raw.seek(start)
    got = raw.readinto(dest)
    if got != nbytes:
        raise OSError(f"tensor record ends early: {got} of {nbytes} bytes")
    return True
