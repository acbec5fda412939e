"""``ObjectGroup``: many objects of one bucket, named by a list, a range or a template.

Long operations (``copy``, ``delete``, ``prefetch``, ``evict``) start a job on background
threads of this process and return its id at once (see :mod:`manystore.batch.jobs`). With
``continue_on_error`` every object is attempted and each failure is recorded in the job's
status; without it the job stops starting new objects at the first failure. ``dry_run``
changes nothing: the job records what it would do (checking that each object exists).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..mirror.transfer import Transfer
from ..types import SourceVersionCheckMode
from .jobs import start_job
from .obj import Object, etl_query
from .props import ObjectProps, parse_props
from .templates import ObjectCollection, ObjectNames, ObjectRange, ObjectTemplate

if TYPE_CHECKING:
    from ..client import StorageClient
    from .bucket import Bucket

__all__ = ["ObjectGroup", "copy_one", "require_cache", "worker_count"]

#: Threads of a group operation when ``num_workers`` is not given.
DEFAULT_WORKERS = 16


def worker_count(num_workers: int | None) -> int:
    """Threads for the SDK's ``num_workers``: ``None``/``0`` default, ``-1`` one, else that many.

    Raises:
        ValueError: Below ``-1``.
    """
    if num_workers is None or num_workers == 0:
        return DEFAULT_WORKERS
    if num_workers == -1:
        return 1
    if num_workers < -1:
        raise ValueError(
            f"num_workers={num_workers!r}: expected -1 (serial), 0 (default) or a positive count"
        )
    return num_workers


def copy_one(src: Bucket, name: str, dst: Bucket, dst_name: str, transfer: Transfer | None = None) -> int:
    """Copy ``src/name`` to ``dst/dst_name`` by the cheapest route (server-side where possible).

    Returns:
        The bytes copied.

    Raises:
        FileNotFoundError: The source object does not exist.
    """
    src_key = src._key(name)
    size = src._client.info(src_key).content_length
    route = transfer or Transfer(src._client, dst._client)
    route.copy_with_retry((src_key, dst._key(dst_name), size, None))
    return size


def require_cache(client: StorageClient, call: str, url: str) -> None:
    """Raise ``ValueError`` naming ``call`` and ``url`` when ``client``'s profile has no read cache."""
    if client._io.cache() is None:
        raise ValueError(
            f"{call} on {url}: profile {client.profile!r} has no read cache; expected a profile with a "
            "'cache:' section on an object store (POSIX profiles are read in place, never cached)"
        )


class ObjectGroup:
    """Objects of one bucket (as the SDK's ``ObjectGroup``); give exactly one selector.

    Args:
        bck: The bucket.
        obj_names: Object names.
        obj_range: An :class:`ObjectRange` (one without indices selects by prefix).
        obj_template: A brace-expansion template (str or :class:`ObjectTemplate`).

    Raises:
        ValueError: Not exactly one selector, or a malformed template.
    """

    def __init__(
        self,
        bck: Bucket,
        obj_names: list[str] | None = None,
        obj_range: ObjectRange | None = None,
        obj_template: str | ObjectTemplate | None = None,
    ) -> None:
        given = [x is not None for x in (obj_names, obj_range, obj_template)]
        if sum(given) != 1:
            raise ValueError(
                f"ObjectGroup of {bck.name}: got {sum(given)} of obj_names/obj_range/obj_template; expected exactly one"
            )
        self._bck = bck
        self._objects: ObjectCollection
        if obj_names is not None:
            self._objects = ObjectNames(obj_names)
        elif obj_range is not None:
            if not isinstance(obj_range, ObjectRange):
                raise TypeError(
                    f"obj_range must be an ObjectRange, got {type(obj_range).__name__}: {obj_range!r}"
                )
            self._objects = obj_range
        else:
            assert obj_template is not None
            template = (
                obj_template if isinstance(obj_template, ObjectTemplate) else ObjectTemplate(obj_template)
            )
            self._objects = template

    @property
    def bucket(self) -> Bucket:
        """The group's bucket."""
        return self._bck

    @property
    def objects(self) -> ObjectCollection:
        """The group's selector."""
        return self._objects

    def list_names(self) -> list[str]:
        """Names of the objects in the group (for a prefix-only range: those the bucket has)."""
        objects = self._objects
        if isinstance(objects, ObjectRange) and not objects.has_indices():
            return [e.name for e in self._bck.list_objects_iter(prefix=objects.prefix)]
        return list(objects)

    def list_urls(self, prefix: str = "", etl: Any = None) -> Iterator[str]:
        """Full URLs of the group's objects whose names start with ``prefix``.

        With ``etl`` (an ``ETLConfig``) each URL carries the SDK's ETL query (see
        :meth:`Bucket.list_urls`).
        """
        suffix = etl_query(etl) if etl is not None else ""
        for name in self.list_names():
            if name.startswith(prefix):
                yield self._bck._url(name) + suffix

    def list_all_objects_iter(self, prefix: str = "", props: str | None = "name,size") -> Iterator[Object]:
        """The group's objects whose names start with ``prefix``.

        With ``props`` (default) each object's properties are fetched (one HEAD each, 16 at
        a time) and objects that do not exist are left out; ``props=None`` makes no request.
        """
        names = [n for n in self.list_names() if n.startswith(prefix)]
        if props is None:
            for name in names:
                yield self._bck.object(name)
            return
        parse_props(props)
        client = self._bck._client

        def head(name: str) -> Object | None:
            try:
                meta = client.info(self._bck._key(name))
            except FileNotFoundError:
                return None
            return self._bck.object(name, ObjectProps(meta, self._bck.name, self._bck.provider, name))

        with ThreadPoolExecutor(DEFAULT_WORKERS) as pool:
            for found in pool.map(head, names):
                if found is not None:
                    yield found

    # ------------------------------------------------------------- operations
    def _start(
        self, kind: str, work: Any, plan: Any, continue_on_error: bool, dry_run: bool, workers: int
    ) -> str:
        return start_job(
            kind,
            self.list_names(),
            work,
            continue_on_error=continue_on_error,
            num_workers=workers,
            dry_run=dry_run,
            plan_of=plan,
            cache_location=self._bck._jobs_location,
        )

    def delete(
        self, continue_on_error: bool = False, dry_run: bool = False, num_workers: int | None = None
    ) -> str:
        """Delete the group's objects; returns a job id.

        A missing object is a failure of that object.
        """
        client, bck = self._bck._client, self._bck

        def work(name: str) -> int:
            client.delete(bck._key(name))
            return 0

        def plan(name: str) -> str:
            client.info(bck._key(name))
            return f"delete {bck._url(name)}"

        return self._start(
            "delete-objects", work, plan, continue_on_error, dry_run, worker_count(num_workers)
        )

    def prefetch(
        self,
        blob_threshold: int | None = None,
        num_workers: int | None = None,
        latest: bool = False,
        continue_on_error: bool = False,
        dry_run: bool = False,
    ) -> str:
        """Load the group's objects into the profile's read cache; returns a job id.

        Args:
            blob_threshold: Not supported (objects are fetched whole); must be None.
            num_workers: Threads (``None``/``0``: 16, ``-1``: 1).
            latest: Validate cached copies against the store's ETag even if recently validated.
            continue_on_error: Attempt every object, recording failures.
            dry_run: Only check the objects exist.

        Raises:
            ValueError: The profile has no read cache.
            NotImplementedError: ``blob_threshold`` given.
        """
        if blob_threshold is not None:
            raise NotImplementedError(
                f"prefetch(blob_threshold={blob_threshold!r}) on {self._bck.name}: objects are prefetched whole"
            )
        client, bck = self._bck._client, self._bck
        require_cache(client, "prefetch", bck.name)
        mode = SourceVersionCheckMode.ENABLE if latest else SourceVersionCheckMode.INHERIT

        def work(name: str) -> int:
            return len(client.read(bck._key(name), check_source_version=mode))

        def plan(name: str) -> str:
            client.info(bck._key(name))
            return f"prefetch {bck._url(name)}"

        return self._start(
            "prefetch-objects", work, plan, continue_on_error, dry_run, worker_count(num_workers)
        )

    def evict(self, continue_on_error: bool = False, dry_run: bool = False) -> str:
        """Drop the group's objects from the profile's read cache (the store keeps them); returns a job id.

        Evicting an object that is not cached (or does not exist) is not an error.

        Raises:
            ValueError: The profile has no read cache.
        """
        client, bck = self._bck._client, self._bck
        require_cache(client, "evict", bck.name)

        def work(name: str) -> int:
            client._io.invalidate(bck._key(name))
            return 0

        def plan(name: str) -> str:
            return f"evict {bck._url(name)}"

        return self._start("evict-objects", work, plan, continue_on_error, dry_run, DEFAULT_WORKERS)

    def copy(
        self,
        to_bck: Bucket,
        prepend: str = "",
        continue_on_error: bool = False,
        dry_run: bool = False,
        force: bool = False,
        latest: bool = False,
        sync: bool = False,
        num_workers: int | None = None,
    ) -> list[str]:
        """Copy the group's objects to ``to_bck`` as ``prepend + name``; returns ``[job id]``.

        Within one store the copy is server-side (no bytes through this process); between
        stores each object is streamed (bounded memory, atomic on the target).

        Args:
            to_bck: Destination bucket (any profile or store).
            prepend: Text put before each copied object's name.
            continue_on_error: Attempt every object, recording failures.
            dry_run: Only check the objects exist and record the planned copies.
            force: Not supported (no conflicting jobs to override); must be False.
            latest: Accepted: the store's latest version is always read.
            sync: Not supported (AIS remote-bucket sync); must be False.
            num_workers: Threads (``None``/``0``: 16, ``-1``: 1).

        Raises:
            NotImplementedError: ``force`` or ``sync``.
        """
        for flag, value in (("force", force), ("sync", sync)):
            if value:
                raise NotImplementedError(f"ObjectGroup.copy({flag}=True) of {self._bck.name}: not supported")
        src = self._bck
        transfer = Transfer(src._client, to_bck._client)

        def work(name: str) -> int:
            return copy_one(src, name, to_bck, prepend + name, transfer)

        def plan(name: str) -> str:
            src._client.info(src._key(name))
            return f"copy {src._url(name)} -> {to_bck._url(prepend + name)}"

        return [
            self._start("copy-objects", work, plan, continue_on_error, dry_run, worker_count(num_workers))
        ]

    def transform(
        self,
        to_bck: Bucket,
        etl_name: str,
        timeout: str | float | None = None,
        prepend: str = "",
        ext: dict[str, str] | None = None,
        continue_on_error: bool = False,
        dry_run: bool = False,
        force: bool = False,
        latest: bool = False,
        sync: bool = False,
        num_workers: int | None = None,
        etl_pipeline: list[str] | None = None,
        *,
        execution: str = "local",
        num_worker_processes: int | None = None,
        ray_address: str | None = None,
        etl_args: str | dict[str, Any] | None = None,
    ) -> str:
        """Apply a registered ETL to each of the group's objects into ``to_bck``; returns a job id.

        As :meth:`Bucket.transform` (outputs are atomic, record their source's version and
        are skipped on a rerun when current); a missing object is a failure of that object.

        Args:
            to_bck: Destination bucket (any profile or store).
            etl_name: A registered ETL.
            timeout: Job time limit (``"30m"``, seconds); None: no limit.
            prepend: Text put before each output's name.
            ext: Extension renames of the outputs, e.g. ``{"jpg": "png"}``.
            continue_on_error: Transform every object, recording failures.
            dry_run: Record what would be done in the job's ``planned``.
            force: Redo every output, even those recorded as current.
            latest: Accepted: the store's latest version is always read.
            sync: Not supported; must be False.
            num_workers: Threads (per worker process) (``None``/``0``: 16, ``-1``: 1).
            etl_pipeline: ETL names applied after ``etl_name``, in order.
            execution: ``"local"`` (threads, or processes) or ``"ray"``.
            num_worker_processes: Worker processes (``None``/1: threads of this process).
            ray_address: Ray cluster with ``execution="ray"`` (None: start or join a local one).
            etl_args: Arguments each transform call gets (a dict as compact JSON); not in the SDK.

        Raises:
            LookupError: An ETL is not registered.
            TypeError: The transform cannot be sent to worker processes (e.g. a lambda).
            NotImplementedError: ``sync=True``.
        """
        from .etl_job import transform_objects

        items: list[tuple[str, Any]] = [(name, None) for name in self.list_names()]
        return transform_objects(
            self._bck,
            to_bck,
            items,
            etl_name,
            kind="etl-objects",
            etl_pipeline=etl_pipeline,
            timeout=timeout,
            prepend=prepend,
            ext=ext,
            continue_on_error=continue_on_error,
            dry_run=dry_run,
            force=force,
            sync=sync,
            num_workers=num_workers,
            execution=execution,
            num_worker_processes=num_worker_processes,
            ray_address=ray_address,
            etl_args=etl_args,
        )

    def archive(
        self,
        archive_name: str,
        mime: str = "",
        to_bck: Bucket | None = None,
        include_source_name: bool = False,
        allow_append: bool = False,
        continue_on_err: bool = False,
    ) -> list[str]:
        """Create (or append to) an archive of the group's objects; returns ``[job id]``.

        The job streams each object into the archive, in the group's order, through
        :class:`~manystore.batch.archive.ArchiveWriter` (``client.open(key, "wb")``: multipart, never
        staged whole on disk or in memory). Nothing is visible until the archive is complete;
        a job that fails (without ``continue_on_err``) stores nothing.

        Args:
            archive_name: Name of the archive in ``to_bck``; its suffix (``.tar``,
                ``.tar.gz``/``.tgz``, ``.zip``) gives the format unless ``mime`` does.
            mime: Archive format (``"tar"``, ``".tgz"``, ``"zip"``...); default from the name.
            to_bck: Bucket of the archive (default: this group's bucket; any profile).
            include_source_name: Name members ``<bucket path>/<object name>`` (the bucket's
                URL without its scheme) instead of ``<object name>``.
            allow_append: Add to an existing archive (its members are kept) instead of
                replacing it.
            continue_on_err: Skip a missing object (recorded as that object's failure) and
                archive the rest; without it the first failure aborts the archive.

        Raises:
            ValueError: No supported format in ``mime`` or the name.
        """
        from .archive import ArchiveWriter, ObjectSource, archive_format

        src = self._bck
        dst = to_bck or src
        dst_key = dst._key(archive_name)
        fmt = archive_format(dst_key, mime or None)
        client = src._client
        state: dict[str, ArchiveWriter] = {}

        def member(name: str) -> str:
            return f"{src.path_name}/{name}" if include_source_name and src.path_name else name

        def work(name: str) -> int:
            writer = state.get("w")
            if writer is None:
                writer = state["w"] = ArchiveWriter(dst._client, dst_key, fmt, allow_append=allow_append)
            before = writer._out.pos
            writer.add(member(name), ObjectSource(client, src._key(name)))
            return writer._out.pos - before

        def finalize(stopped: bool) -> None:
            writer = state.get("w")
            if stopped:
                if writer is not None:
                    writer.abort()
                return
            if writer is None:  # nothing archived (empty group, or every object failed)
                writer = ArchiveWriter(dst._client, dst_key, fmt, allow_append=allow_append)
            if writer._broken:
                raise OSError(
                    f"archive {dst._url(archive_name)}: a member failed mid-stream; nothing was stored"
                )
            writer.close()

        return [
            start_job(
                "archive",
                self.list_names(),
                work,
                continue_on_error=continue_on_err,
                num_workers=1,
                cache_location=src._jobs_location,
                finalize=finalize,
            )
        ]
