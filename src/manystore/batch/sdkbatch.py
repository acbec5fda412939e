"""``Client.batch(...)``: the AIStore SDK's ``Batch`` (Get-Batch) over :class:`~manystore.batch.getbatch.GetBatch`.

An SDK script builds a batch from objects (or names in a default bucket), adds archive
members and byte ranges with :meth:`Batch.add`, then iterates :meth:`Batch.get` for
``(info, bytes)`` pairs in request order, or reads ``get(raw=True)`` as one archive
stream. Items may come from any buckets, profiles and backends; they are fetched
concurrently by this process under a byte budget (see ``docs/batch-archives.md``).

Infos carry the SDK's names: ``obj_name`` is the object's name in its bucket, ``bucket``
the bucket's name (its URL), ``provider`` its provider. In the archive stream a member is
named ``<bucket path>/<obj_name>`` (the bucket's URL without its scheme, e.g.
``data/train/000.jpg`` for ``s3://data/train``), ``<obj_name>`` with ``only_obj_name``,
``/<archpath>`` appended for an archive member, and a failed item is the empty
``__404__/<name>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from .getbatch import (
    DEFAULT_BYTE_BUDGET,
    DEFAULT_WORKERS,
    MISSING_DIR,
    BatchItem,
    BatchItemInfo,
    BatchStream,
    GetBatch,
)
from .obj import Object, split_archpath

if TYPE_CHECKING:
    from .bucket import Bucket
    from .client import Client

__all__ = ["Batch"]

_BUCKET_REQUIRED = "a bucket is required when objects are given as names (str or list of str)"


class _LabelledBatch(GetBatch):
    """A :class:`GetBatch` whose infos and member names use the SDK's bucket/object names."""

    def __init__(self, labels: dict[int, tuple[Bucket, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._labels = labels
        #: Infos of the items that failed so far (reported in place), in request order.
        self.failed: list[BatchItemInfo] = []

    def _outcome(self, slot: Any, stats: Any) -> tuple[BatchItemInfo, bytes]:
        info, data = super()._outcome(slot, stats)
        if info.err_msg:
            self.failed.append(info)
        return info, data

    def _info(self, item: BatchItem) -> BatchItemInfo:
        bucket, name = self._labels[id(item)]
        return BatchItemInfo(name, item.archpath, bucket.name, bucket.provider, item.opaque)

    def member_name(self, info: BatchItemInfo) -> str:
        name = info.obj_name
        if not self.only_obj_name:
            path = info.bucket.split("://", 1)[1] if "://" in info.bucket else info.bucket
            name = f"{path.strip('/')}/{name}" if path.strip("/") else name
        if info.archpath:
            name = f"{name}/{info.archpath.lstrip('/')}"
        return f"{MISSING_DIR}/{name}" if info.err_msg else name


class Batch:
    """A Get-Batch request (as the SDK's ``Batch``); made by :meth:`manystore.batch.Client.batch`.

    Args:
        client: The :class:`~manystore.batch.Client` (resolves ``bck``/``provider`` of :meth:`add`).
        objects: An :class:`Object`, a name, or a list of them (names need ``bucket``); a
            name may carry a member as ``name?archpath=member`` (``Object.get_url(archpath=)``).
        bucket: Default bucket of names.
        output_format: Archive format of ``get(raw=True)``: ``.tar``, ``.tgz``/``.tar.gz``, ``.zip``.
        cont_on_err: Report a failed item in place (``err_msg``; ``__404__/`` in the
            archive); False raises the first failure, in request order.
        only_obj_name: Name archive members by the object name alone.
        streaming_get: True delivers each item as soon as it and those before it arrived;
            False first checks every item (one HEAD each, or the archive index), so a
            failure with ``cont_on_err=False`` raises before anything is delivered.
        colocation: The SDK's placement hint; only 0 (none) — there are no AIS targets.
        workers: Fetching threads (manystore's; default 16).
        byte_budget: Bound on bytes fetched and not yet delivered (manystore's; default 64 MiB).

    Raises:
        ValueError: An unknown ``output_format``, names without ``bucket``, or an object
            of another type.
        NotImplementedError: A non-zero ``colocation``.
    """

    def __init__(
        self,
        client: Client,
        objects: Object | str | list[Object] | list[str] | list[Object | str] | None = None,
        bucket: Bucket | None = None,
        output_format: str = ".tar",
        cont_on_err: bool = True,
        only_obj_name: bool = False,
        streaming_get: bool = True,
        colocation: int = 0,
        *,
        workers: int = DEFAULT_WORKERS,
        byte_budget: int = DEFAULT_BYTE_BUDGET,
    ) -> None:
        if int(colocation) != 0:
            raise NotImplementedError(
                f"batch(colocation={colocation!r}): colocation hints concern AIS targets; expected 0"
            )
        self._client, self.bucket = client, bucket
        self._options: dict[str, Any] = {
            "output_format": output_format,
            "cont_on_err": cont_on_err,
            "only_obj_name": only_obj_name,
            "streaming_get": streaming_get,
            "workers": workers,
            "byte_budget": byte_budget,
        }
        GetBatch(**self._options)  # validates the options now
        self._items: list[tuple[BatchItem, Bucket, str]] = []
        #: The request of the last :meth:`get` (its ``stats``, and ``failed``: infos of failed items).
        self.last_request: _LabelledBatch | None = None
        if objects is not None:
            for obj in objects if isinstance(objects, list) else [objects]:
                if not isinstance(obj, (Object, str)):
                    raise ValueError(
                        f"batch object {obj!r} of type {type(obj).__name__}; expected an Object or a name"
                    )
                self.add(obj)

    @property
    def requests_list(self) -> list[BatchItem]:
        """The items added so far, in request order."""
        return [item for item, _, _ in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def add(
        self,
        obj: Object | str,
        opaque: bytes | None = None,
        archpath: str | None = None,
        start: int | None = None,
        length: int | None = None,
        bck: str | None = None,
        provider: str | None = None,
    ) -> Batch:
        """Add one item (an object, a byte range of it, or a member of an archive object); returns the batch.

        Args:
            obj: An :class:`Object`, or a name in the default bucket (or in ``bck``).
            opaque: Caller's bytes, returned in the item's info.
            archpath: A member of the (archive) object to fetch instead of the object.
            start: First byte of a range (of the object, or of the member with ``archpath``).
            length: Bytes from ``start``; ``-1`` to the end. A non-zero ``start`` needs one.
            bck: A bucket for this name (any ``Client.bucket`` argument); with ``provider``.
            provider: The provider of ``bck`` (``ais``, ``s3``, ``gcp``...); with ``bck``.

        Raises:
            ValueError: A bad range (negative ``start``, ``length < -1``, ``start`` without
                ``length``), ``bck`` without ``provider`` or the reverse, ``bck`` with an
                :class:`Object`, or a name with no bucket.
        """
        if start is not None and start < 0:
            raise ValueError(f"batch range start={start!r}: expected >= 0")
        if length is not None and length < -1:
            raise ValueError(f"batch range length={length!r}: expected > 0, or -1 to read to the end")
        if start and not length:
            raise ValueError(
                f"batch range start={start!r} needs length > 0 or -1 (to the end); got {length!r}"
            )
        if (bck is None) != (provider is None):
            raise ValueError(f"batch add: bck={bck!r}, provider={provider!r}; expected both or neither")
        if isinstance(obj, Object):
            if bck is not None:
                raise ValueError(f"batch add {obj!r}: bck/provider cannot be combined with an Object")
            bucket, name = obj.bucket, obj.name
        elif isinstance(obj, str):
            name, member = split_archpath(obj)
            archpath = archpath or member or None
            if bck is not None:
                bucket = self._client.bucket(bck, provider or "ais")
            elif self.bucket is not None:
                bucket = self.bucket
            else:
                raise ValueError(f"batch add {obj!r}: {_BUCKET_REQUIRED}")
        else:
            raise ValueError(
                f"batch object {obj!r} of type {type(obj).__name__}; expected an Object or a name"
            )
        item = BatchItem(bucket.client, bucket._key(name), archpath or "", start, length, opaque)
        self._items.append((item, bucket, name))
        return self

    def clear(self) -> Batch:
        """Remove every item (the batch can be reused); returns the batch."""
        self._items = []
        return self

    @overload
    def get(
        self,
        raw: Literal[False] = False,
        decode_as_stream: bool = False,
        clear_batch: bool = True,
        *,
        tar_buffer_size: int | None = None,
    ) -> Iterator[tuple[BatchItemInfo, bytes]]: ...

    @overload
    def get(
        self,
        raw: Literal[True],
        decode_as_stream: bool = False,
        clear_batch: bool = True,
        *,
        tar_buffer_size: int | None = None,
    ) -> BatchStream: ...

    def get(
        self,
        raw: bool = False,
        decode_as_stream: bool = False,
        clear_batch: bool = True,
        *,
        tar_buffer_size: int | None = None,
    ) -> Iterator[tuple[BatchItemInfo, bytes]] | BatchStream:
        """Fetch the items.

        Args:
            raw: Return one archive stream (``output_format``), a readable file object the
                caller closes, instead of ``(info, bytes)`` pairs.
            decode_as_stream: The SDK's choice between decoding a multipart response as it
                arrives or at once; here items are always delivered as they arrive (memory
                bounded by the byte budget), which is what both values get.
            clear_batch: Remove the items once the request is built (the batch can be reused).
            tar_buffer_size: The SDK's read buffer for parsing a tar response; checked as
                the SDK does (a positive int, tar format, ``raw=False``). No tar is parsed
                here: items are handed over as fetched.

        Returns:
            ``(info, bytes)`` pairs in request order, or (``raw``) a :class:`BatchStream`.

        Raises:
            ValueError: No items, or a bad ``tar_buffer_size``.
            Exception: With ``cont_on_err=False``, the first item's failure (e.g.
                :class:`FileNotFoundError`), raised while iterating.
        """
        if not self._items:
            raise ValueError("batch get: no objects added; expected at least one (add() or objects=)")
        if tar_buffer_size is not None:
            if (
                isinstance(tar_buffer_size, bool)
                or not isinstance(tar_buffer_size, int)
                or tar_buffer_size <= 0
            ):
                raise ValueError(f"tar_buffer_size={tar_buffer_size!r}: expected a positive integer")
            if raw or self._options["output_format"] not in (".tar", ".tgz", ".tar.gz"):
                raise ValueError("tar_buffer_size applies only to tar formats with raw=False")
        labels = {id(item): (bucket, name) for item, bucket, name in self._items}
        request = _LabelledBatch(labels, **self._options)
        for item, _, _ in self._items:
            request.add(item)
        if clear_batch:
            self.clear()
        self.last_request = request
        return request.get(raw=raw)
