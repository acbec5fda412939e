"""Shards for the manystore.samples tests, built independently of the package: tarfile + msgpack + numpy.save."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np


class Pt:
    """A minimal sample type: an image array and an int label, decoded from atdata's wire format."""

    def __init__(self, image: Any, label: int) -> None:
        self.image, self.label = image, label

    @classmethod
    def from_bytes(cls, b: bytes, *, allow_pickle: bool = False) -> Pt:
        d = msgpack.unpackb(b)
        return cls(np.load(io.BytesIO(d["image"]), allow_pickle=allow_pickle), d["label"])


def label_of(sample: Any) -> int:
    """A picklable 'collate' for DataLoader(batch_size=None): the label."""
    return int(sample.label)


def npy(array: Any) -> bytes:
    f = io.BytesIO()
    np.save(f, array)
    return f.getvalue()


def packed(label: int, shape: tuple[int, ...] = (3, 4, 4)) -> bytes:
    image = np.full(shape, label % 251, np.uint8)
    return msgpack.packb({"image": npy(image), "label": label})


def shard_bytes(labels: Sequence[int], shape: tuple[int, ...] = (3, 4, 4), extra: bool = False) -> bytes:
    """A tar with one ``{key}.msgpack`` member per label (and a ``.txt`` beside it with ``extra``)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for label in labels:
            members = [("msgpack", packed(label, shape))]
            if extra:
                members.append(("txt", str(label).encode()))
            for ext, data in members:
                info = tarfile.TarInfo(f"sample{label:06d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def uneven_shards(sizes: Sequence[int], **kwargs: Any) -> list[bytes]:
    """Shards of ``sizes`` samples, labels numbered across shards from 0."""
    out, label = [], 0
    for size in sizes:
        out.append(shard_bytes(range(label, label + size), **kwargs))
        label += size
    return out
