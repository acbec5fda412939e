"""``Object``: one object of a :class:`~manystore.batch.Bucket` (as the AIStore SDK's ``Object``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .props import ObjectProps
from .reader import DEFAULT_CHUNK_SIZE, ObjectReader
from .writer import ObjectWriter

if TYPE_CHECKING:
    from .bucket import Bucket

__all__ = ["ARCHPATH_QUERY", "Object", "etl_query", "split_archpath"]

#: Query that marks an archive member in a URL (``Object.get_url(archpath=...)``), as AIStore's.
ARCHPATH_QUERY = "?archpath="


def etl_query(etl: Any) -> str:
    """The SDK's ETL query (``?etl_name=...&etl_pipeline=...&etl_args=...``) for an ``ETLConfig``/``Etl``/name.

    Raises:
        TypeError: ``etl`` is none of these.
    """
    from .etl_apply import etl_args_text

    target, args = etl, None
    if not isinstance(etl, str) and hasattr(etl, "name") and not hasattr(etl, "pipeline"):
        target, args = etl.name, getattr(etl, "args", None)
    params: dict[str, str] = {}
    if isinstance(target, str):
        params["etl_name"] = target
    elif hasattr(target, "name") and hasattr(target, "pipeline"):
        params["etl_name"] = target.name
        if target.pipeline:
            params["etl_pipeline"] = ",".join(target.pipeline)
    else:
        raise TypeError(f"etl={etl!r}: expected an ETLConfig, an Etl or an ETL name")
    if args:
        params["etl_args"] = etl_args_text(args)
    return "?" + urlencode(params)


def split_archpath(url: str) -> tuple[str, str]:
    """``(object URL, member)`` of a URL made by :meth:`Object.get_url` (member ``""`` if none)."""
    from urllib.parse import unquote

    base, sep, member = url.partition(ARCHPATH_QUERY)
    return (base, unquote(member)) if sep else (url, "")


class Object:
    """One object: its name within a bucket, and what can be done to it.

    Made by :meth:`Bucket.object`; no request is made until a method needs one.

    Args:
        bucket: The bucket (URL prefix) it belongs to.
        name: Its name within the bucket.
        props: Properties already known (e.g. from a listing).
        etl: An ``ETLConfig`` applied by :meth:`get_reader` when it is given none (set
            by :meth:`Client.get_object_from_url` for a URL with an ETL query).
    """

    def __init__(
        self, bucket: Bucket, name: str, props: ObjectProps | None = None, *, etl: Any = None
    ) -> None:
        if not isinstance(name, str) or not name or name.startswith("/"):
            raise ValueError(f"object name {name!r}: expected a non-empty name relative to the bucket")
        self._bucket, self._name, self._props = bucket, name, props
        self._etl = etl

    # ----------------------------------------------------------------- identity
    @property
    def bucket(self) -> Bucket:
        """The object's bucket."""
        return self._bucket

    @property
    def bucket_name(self) -> str:
        """Name (URL) of the object's bucket."""
        return self._bucket.name

    @property
    def bucket_provider(self) -> str:
        """Provider of the object's bucket (``s3``, ``gcs``, ``azure``, ``ais``, ``file``...)."""
        return self._bucket.provider

    @property
    def name(self) -> str:
        """The object's name within its bucket."""
        return self._name

    @property
    def key(self) -> str:
        """The object's key within its profile (bucket prefix + name)."""
        return self._bucket._key(self._name)

    @property
    def uname(self) -> str:
        """The object's full URL (the SDK's unified name)."""
        return self._bucket._url(self._name)

    @property
    def query_params(self) -> dict[str, str]:
        """Empty: manystore sends no AIS query parameters."""
        return {}

    def __repr__(self) -> str:
        return f"Object({self.uname!r})"

    # -------------------------------------------------------------- properties
    def head(self) -> ObjectProps:
        """Fetch the object's properties (one HEAD) and keep them as :attr:`props_cached`.

        Raises:
            FileNotFoundError: The object does not exist.
        """
        meta = self._bucket._client.info(self.key)
        self._props = ObjectProps(meta, self.bucket_name, self.bucket_provider, self._name)
        return self._props

    @property
    def props(self) -> ObjectProps:
        """The object's current properties (makes a HEAD request)."""
        return self.head()

    @property
    def props_cached(self) -> ObjectProps | None:
        """The properties from the last :meth:`head` or listing, without a request."""
        return self._props

    # ------------------------------------------------------------------- reads
    def get_reader(
        self,
        archive_config: Any = None,
        blob_download_config: Any = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        etl: Any = None,
        writer: Any = None,
        latest: bool = False,
        byte_range: str | None = None,
        direct: bool = False,
        num_workers: int | None = None,
    ) -> ObjectReader:
        """A reader of the object's content (no request until it is used, unless ``writer`` is given).

        Args:
            archive_config: Read one member (``archpath``), or a tar of the members ``regex``
                and ``mode`` select, of an archive object (tar, tar.gz, zip); see
                :class:`~manystore.batch.archreader.ArchiveReader`.
            blob_download_config: Anything with ``chunk_size`` and ``num_workers`` (the SDK's
                ``BlobDownloadConfig``): parallel ranged GETs of that size.
            chunk_size: Bytes per ranged GET and per iterated chunk.
            etl: An ``ETLConfig`` (or ``Etl``, or name): the reader delivers the object
                transformed by that registered ETL (and its pipeline).
            writer: A binary file: the whole content is written to it now (the caller closes it).
            latest: Accepted: every read already gets the store's latest version.
            byte_range: RFC 7233 single range (``"bytes=0-499"``, ``"bytes=500-"``, ``"bytes=-500"``).
            direct: Accepted: reads always go straight to the store (there is no proxy).
            num_workers: Ranged GETs in flight at once (default 1; also from ``blob_download_config``).

        Raises:
            ValueError: ``byte_range`` with ``blob_download_config`` (as the SDK), ``archive_config``
                with ``blob_download_config``, ``num_workers > 1`` or ``etl``, ``etl`` with
                ``byte_range``/``num_workers``/``blob_download_config``, or a bad
                ``byte_range``/``chunk_size``/``num_workers``/``archive_config``.
            TypeError: ``archive_config`` is not an archive configuration.
            LookupError: ``etl`` names an ETL that is not registered.
        """
        etl = etl if etl is not None else self._etl
        if archive_config is not None:
            if etl is not None:
                raise ValueError(
                    f"get_reader on {self.uname}: archive_config cannot be used with etl "
                    "(read the member, then transform it)"
                )
            return self._archive_reader(
                archive_config, blob_download_config, chunk_size, writer, byte_range, num_workers
            )
        if etl is not None:
            return self._etl_reader(etl, chunk_size, writer, byte_range, num_workers, blob_download_config)
        workers = num_workers or 1
        if blob_download_config is not None:
            if byte_range is not None:
                raise ValueError(
                    f"get_reader on {self.uname}: byte_range cannot be used with blob_download_config"
                )
            blob_chunk = getattr(blob_download_config, "chunk_size", None)
            blob_workers = getattr(blob_download_config, "num_workers", None)
            chunk_size = int(blob_chunk) if blob_chunk else chunk_size
            workers = num_workers or (int(blob_workers) if blob_workers else 4)
        client = self._bucket._client
        reader = ObjectReader(client, self.key, self.uname, byte_range, chunk_size, workers)
        if writer is not None:
            for chunk in reader:
                writer.write(chunk)
        return reader

    def _archive_reader(
        self,
        archive_config: Any,
        blob_download_config: Any,
        chunk_size: int,
        writer: Any,
        byte_range: str | None,
        num_workers: int | None,
    ) -> ObjectReader:
        from .archreader import ArchiveReader, as_archive_config

        if blob_download_config is not None or (num_workers or 1) > 1:
            raise ValueError(
                f"get_reader on {self.uname}: archive_config cannot be used with blob_download_config "
                f"or num_workers={num_workers!r} (a member is one ranged GET)"
            )
        config = as_archive_config(archive_config)
        reader = ArchiveReader(self._bucket._client, self.key, self.uname, config, byte_range, chunk_size)
        if writer is not None:
            for chunk in reader:
                writer.write(chunk)
        return reader

    def _etl_reader(
        self, etl: Any, chunk_size: int, writer: Any, byte_range: str | None, workers: int | None, blob: Any
    ) -> ObjectReader:
        from .etl_apply import EtlObjectReader, resolve_stages

        for what, value in (
            ("byte_range", byte_range),
            ("num_workers", workers if workers and workers > 1 else None),
            ("blob_download_config", blob),
        ):
            if value is not None:
                raise ValueError(
                    f"get_reader on {self.uname}: {what}={value!r} cannot be used with etl "
                    "(the transform reads the whole object)"
                )
        stages, args = resolve_stages(etl, self._bucket._jobs_location)
        reader = EtlObjectReader(self._bucket._client, self.key, self.uname, chunk_size, stages, args)
        if writer is not None:
            for chunk in reader:
                writer.write(chunk)
        return reader

    def get(self, **kwargs: Any) -> ObjectReader:
        """Deprecated SDK name of :meth:`get_reader` (same arguments)."""
        return self.get_reader(**kwargs)

    def get_url(self, archpath: str = "", etl: Any = None) -> str:
        """The object's URL; with ``archpath`` the URL of that member (``<url>?archpath=<member>``,
        as AIStore names it; understood by ``Client.batch`` / ``Batch.add`` and ``manystore archive
        get``; the member name is percent-encoded); with ``etl`` it carries the SDK's ETL query
        (see :meth:`Bucket.list_urls`).
        """
        url = self.uname
        if archpath:
            from urllib.parse import quote

            url += f"{ARCHPATH_QUERY}{quote(archpath, safe='/')}"
        if etl is not None:
            query = etl_query(etl)
            url += "&" + query[1:] if archpath else query
        return url

    def get_semantic_url(self) -> str:
        """The object's URL (``s3://bucket/key``, ``msc://profile/key``, a path...)."""
        return self.uname

    # ------------------------------------------------------------------ writes
    def get_writer(self) -> ObjectWriter:
        """A writer of the object's content and properties."""
        return ObjectWriter(self._bucket._client, self.key, self.uname)

    def put_content(self, content: bytes) -> None:
        """Deprecated SDK form of ``get_writer().put_content``."""
        self.get_writer().put_content(content)

    def put_file(self, path: str) -> None:
        """Deprecated SDK form of ``get_writer().put_file``."""
        self.get_writer().put_file(path)

    def append_content(self, content: bytes, handle: str = "", flush: bool = False) -> str:
        """Deprecated SDK form of ``get_writer().append_content``."""
        return self.get_writer().append_content(content, handle, flush)

    def set_custom_props(self, custom_metadata: dict[str, str], replace_existing: bool = False) -> None:
        """Deprecated SDK form of ``get_writer().set_custom_props``."""
        self.get_writer().set_custom_props(custom_metadata, replace_existing)

    def delete(self) -> None:
        """Delete the object.

        Raises:
            FileNotFoundError: The object does not exist.
        """
        self._bucket._client.delete(self.key)

    def copy(self, to_obj: Object, etl: Any = None, latest: bool = False, sync: bool = False) -> None:
        """Copy this object to ``to_obj`` (any bucket, any profile; server-side where the store can).

        Args:
            to_obj: The destination object.
            etl: An ``ETLConfig``/``Etl``/name: write the object transformed (always
                redone; the output records its source's version as bulk transforms do).
            latest: Accepted: the store's latest version is always read.
            sync: Not supported (it concerns AIS's cached copies of remote buckets).

        Raises:
            FileNotFoundError: This object does not exist.
            LookupError: ``etl`` names an ETL that is not registered.
            NotImplementedError: ``sync=True``.
        """
        if sync:
            raise NotImplementedError(
                f"copy(sync=True) of {self.uname}: AIS remote-bucket sync has no equivalent"
            )
        if etl is not None:
            from .etl_apply import resolve_stages
            from .etl_job import Task, transform_one

            stages, args = resolve_stages(etl, self._bucket._jobs_location)
            task = Task(self._name, self.key, self.uname, to_obj.key, None)
            transform_one(self._bucket._client, to_obj._bucket._client, stages, args, task, force=True)
            return
        from .group import copy_one

        copy_one(self._bucket, self._name, to_obj._bucket, to_obj._name)
