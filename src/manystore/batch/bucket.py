"""``Bucket``: a manystore URL prefix seen through the AIStore SDK's ``Bucket`` API.

A bucket here is any prefix manystore can address — ``msc://profile/prefix``,
``s3://bucket/prefix``, ``gs://``, ``az://``, ``ais://``, a local directory — and object
names are relative to it. Calls that administer a whole AIS bucket map onto the prefix
where that has a meaning and raise :class:`NotImplementedError` naming the call where it
has none; ``docs/batch.md`` has the table.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..mirror.transfer import Transfer
from .group import ObjectGroup, copy_one, require_cache, worker_count
from .jobs import start_job
from .obj import Object, etl_query
from .props import BucketEntry, BucketList, ListObjectFlag, ObjectProps, list_flags, parse_props
from .templates import ObjectRange, ObjectTemplate
from .writer import APPEND_DIR

if TYPE_CHECKING:
    from ..client import StorageClient

__all__ = ["Bucket"]

logger = logging.getLogger(__name__)

#: Entries per page of :meth:`Bucket.list_objects` when ``page_size`` is 0 (S3's maximum).
DEFAULT_PAGE_SIZE = 1000
#: Names listed as archives with ``ListObjectFlag.ARCH_DIR`` (and by ``list_archive``).
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
#: Separates the archive from the member in an ``ARCH_DIR`` continuation token.
_TOKEN_SEP = "\x00"


def is_sidecar(name: str, seen_tars: set[str]) -> bool:
    """True if ``name`` is the ``<tar>.idx`` index manystore wrote beside a listed tar."""
    return name.endswith(".idx") and name[:-4] in seen_tars


def archive_entries(bucket: Bucket, name: str, after: str = "", factory: Any = None) -> Iterator[BucketEntry]:
    """Entries ``<name>/<member>`` of the archive object ``name`` (members after ``after``)."""
    from .archive import list_archive

    members = list_archive(bucket._client, bucket._key(name))
    skipping = bool(after)
    for member in members:
        if skipping:
            skipping = member.name != after
            continue
        yield BucketEntry(name=f"{name}/{member.name}", size=member.size, _factory=factory)


def apply_ext(name: str, ext: dict[str, str] | None) -> str:
    """``name`` with its extension renamed by ``ext`` (e.g. ``{"jpg": "png"}``), else unchanged."""
    if not ext:
        return name
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix in ext:
        return f"{stem}.{ext[suffix]}"
    return name


class Bucket:
    """A URL prefix with the SDK's bucket API; made by :meth:`manystore.batch.Client.bucket`.

    Args:
        client: The profile's storage client.
        prefix: Key prefix within the profile (``""`` or ending in ``/``).
        provider: Provider name (``s3``, ``gcs``, ``azure``, ``ais``, ``file``...).
        jobs_location: Cache directory of job state files (None: manystore's default).
    """

    def __init__(
        self, client: StorageClient, prefix: str, provider: str, jobs_location: str | None = None
    ) -> None:
        prefix = prefix.strip("/")
        self._client = client
        self._prefix = prefix + "/" if prefix else ""
        self._provider = provider
        self._jobs_location = jobs_location

    # ---------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        """The bucket's URL (``s3://b/prefix``, ``msc://profile/prefix``, ``/local/dir``)."""
        return (self._client.url_prefix + self._prefix).rstrip("/") or "/"

    @property
    def provider(self) -> str:
        """The provider of the bucket's profile (``s3``, ``gcs``, ``azure``, ``ais``, ``file``...)."""
        return self._provider

    @property
    def namespace(self) -> None:
        """None: manystore buckets have no AIS namespace."""
        return None

    @property
    def client(self) -> StorageClient:
        """The manystore client of the bucket's profile."""
        return self._client

    @property
    def prefix(self) -> str:
        """The bucket's key prefix within its profile (``""`` or ending in ``/``)."""
        return self._prefix

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _url(self, name: str) -> str:
        return self._client.url_prefix + self._prefix + name

    @property
    def path_name(self) -> str:
        """The bucket's URL without its scheme (``s3://b/p`` -> ``b/p``; ``/data/x`` -> ``data/x``).

        Names the bucket inside archives: ``ObjectGroup.archive(include_source_name=True)``
        members and Get-Batch archive members.
        """
        name = self.name
        return (name.split("://", 1)[1] if "://" in name else name).strip("/")

    def get_path(self) -> str:
        """The bucket's URL."""
        return self.name

    def __repr__(self) -> str:
        return f"Bucket({self.name!r}, provider={self._provider!r})"

    # ---------------------------------------------------------------- objects
    def object(self, obj_name: str, props: ObjectProps | None = None) -> Object:
        """The object ``obj_name`` of this bucket (no request is made)."""
        return Object(self, obj_name, props)

    def objects(
        self,
        obj_names: list[str] | None = None,
        obj_range: ObjectRange | None = None,
        obj_template: str | ObjectTemplate | None = None,
    ) -> ObjectGroup:
        """A group of this bucket's objects, by names, range or template (exactly one)."""
        return ObjectGroup(self, obj_names=obj_names, obj_range=obj_range, obj_template=obj_template)

    # ---------------------------------------------------------------- listing
    def _entries(
        self, prefix: str, start_after: str | None, wanted: set[str], arch_dir: bool = False
    ) -> Iterator[BucketEntry]:
        """Listed objects in name order: the append staging area and tar sidecars hidden;
        with ``arch_dir`` each archive followed by its members."""
        seen_tars: set[str] = set()
        if start_after and _TOKEN_SEP in start_after:  # resume inside an archive's members
            archive, _, member = start_after.partition(_TOKEN_SEP)
            yield from archive_entries(self, archive, member)
            start_after = archive
        if start_after and start_after.endswith(".tar"):
            seen_tars.add(start_after)
        start = self._key(start_after) if start_after else None
        for meta in self._client.list(
            self._key(prefix), start_after=start, show_attributes="custom" in wanted
        ):
            if meta.type != "file":
                continue
            if meta.key.startswith(APPEND_DIR) or not meta.key.startswith(self._prefix):
                continue
            name = meta.key[len(self._prefix) :]
            if is_sidecar(name, seen_tars):
                continue
            if name.endswith(".tar"):
                seen_tars.add(name)
            yield BucketEntry.build(name, meta, wanted, self.object)
            if arch_dir and name.lower().endswith(ARCHIVE_SUFFIXES):
                try:
                    yield from archive_entries(self, name)
                except (ValueError, OSError) as exc:
                    logger.warning(
                        "listing %s: %s is not a readable archive (%s); listed as an object",
                        self.name,
                        name,
                        exc,
                    )

    def list_objects(
        self,
        prefix: str = "",
        props: str = "",
        page_size: int = 0,
        uuid: str = "",
        continuation_token: str = "",
        flags: list[Any] | None = None,
        target: str = "",
    ) -> BucketList:
        """One page of objects whose names start with ``prefix``, in name order.

        Args:
            prefix: Name prefix.
            props: Comma-separated properties to fill (``name,size,atime,version,checksum,custom``).
            page_size: Entries per page (0: 1000).
            uuid: Must be empty (the pages of a listing are chained by the token alone).
            continuation_token: The token of the previous page (empty: the first page).
            flags: :class:`ListObjectFlag` s: ``ARCH_DIR`` lists each archive (``.tar``,
                ``.tar.gz``, ``.tgz``, ``.zip``) followed by its members, named
                ``<archive>/<member>``; ``NAME_ONLY`` and ``NAME_SIZE`` list as usual.
            target: Not supported (AIS target node); must be empty.

        Raises:
            ValueError: An unsupported property, a non-empty ``uuid`` or ``target``, a negative
                page size, a value that is not a flag.
            NotImplementedError: A flag about AIS's in-cluster state (``CACHED``...).
        """
        arch_dir = ListObjectFlag.ARCH_DIR in self._check_listing(flags, target, page_size)
        if uuid:
            raise ValueError(
                f"list_objects uuid={uuid!r}: expected '' (pages are chained by continuation_token)"
            )
        wanted = parse_props(props)
        size = page_size or DEFAULT_PAGE_SIZE
        entries: list[BucketEntry] = []
        more = False
        for entry in self._entries(prefix, continuation_token or None, wanted, arch_dir):
            if len(entries) == size:
                more = True
                break
            entries.append(entry)
        return BucketList(entries, self._token(entries[-1].name) if more else "")

    def _token(self, name: str) -> str:
        """The continuation token after entry ``name`` (an archive member's says which archive)."""
        for suffix in ARCHIVE_SUFFIXES:
            at = name.find(suffix + "/")
            if at > 0:
                archive = name[: at + len(suffix)]
                return f"{archive}{_TOKEN_SEP}{name[len(archive) + 1 :]}"
        return name

    def _check_listing(self, flags: list[Any] | None, target: str, page_size: int) -> set[ListObjectFlag]:
        chosen = list_flags(flags, self.name)
        if target:
            raise ValueError(
                f"list objects of {self.name}: target={target!r}; expected '' (no AIS target nodes)"
            )
        if page_size < 0:
            raise ValueError(f"page_size={page_size!r}: expected >= 0")
        return chosen

    def list_objects_iter(
        self,
        prefix: str = "",
        props: str = "",
        page_size: int = 0,
        flags: list[Any] | None = None,
        target: str = "",
    ) -> Iterator[BucketEntry]:
        """Every object whose name starts with ``prefix``, lazily (see :meth:`list_objects`)."""
        arch_dir = ListObjectFlag.ARCH_DIR in self._check_listing(flags, target, page_size)
        return self._entries(prefix, None, parse_props(props), arch_dir)

    def list_all_objects(
        self,
        prefix: str = "",
        props: str = "",
        page_size: int = 0,
        flags: list[Any] | None = None,
        target: str = "",
    ) -> list[BucketEntry]:
        """Every object whose name starts with ``prefix``, as a list."""
        return list(self.list_objects_iter(prefix, props, page_size, flags, target))

    def list_all_objects_iter(self, prefix: str = "", props: str = "name,size") -> Iterator[Object]:
        """Every object whose name starts with ``prefix``, as :class:`Object` s with cached properties."""
        parse_props(props)
        seen_tars: set[str] = set()
        for meta in self._client.list(self._key(prefix)):
            if (
                meta.type == "file"
                and meta.key.startswith(self._prefix)
                and not meta.key.startswith(APPEND_DIR)
            ):
                name = meta.key[len(self._prefix) :]
                if is_sidecar(name, seen_tars):
                    continue
                if name.endswith(".tar"):
                    seen_tars.add(name)
                yield Object(self, name, ObjectProps(meta, self.name, self._provider, name))

    def list_urls(self, prefix: str = "", etl: Any = None) -> Iterator[str]:
        """Full URLs of the objects whose names start with ``prefix``.

        With ``etl`` (an ``ETLConfig``) each URL carries it as a query
        (``?etl_name=...&etl_args=...``, as the SDK's); :meth:`Client.get_object_from_url`
        turns such a URL back into an object read through that ETL.
        """
        suffix = etl_query(etl) if etl is not None else ""
        for entry in self.list_objects_iter(prefix):
            yield self._url(entry.name) + suffix

    def list_archive(
        self, archive_obj_name: str, include_archive_obj: bool = False, props: str = "", page_size: int = 0
    ) -> list[BucketEntry]:
        """The files inside an archive object (``.tar``, ``.tar.gz``/``.tgz``, ``.zip``), as the SDK lists them.

        Entries are named ``<archive_obj_name>/<member path>`` (as an AIS listing with
        ``ARCH_DIR``), in archive order, with their (uncompressed) sizes. A tar or zip is
        listed from its index (see ``docs/batch-archives.md``); a tar.gz is streamed once.

        Args:
            archive_obj_name: The archive's name in this bucket.
            include_archive_obj: Put the archive's own entry first.
            props: Properties of the archive's own entry (see :meth:`list_objects`);
                members carry name and size.
            page_size: Accepted for the SDK's signature: the members come from one index,
                not from pages (must be >= 0).

        Raises:
            FileNotFoundError: No object ``archive_obj_name``.
            ValueError: Its name has no archive suffix, it is not a valid archive, or a bad
                ``props``/``page_size``.
        """
        wanted = parse_props(props)
        self._check_listing(None, "", page_size)
        entries: list[BucketEntry] = []
        if include_archive_obj:
            meta = self._client.info(self._key(archive_obj_name))
            entries.append(BucketEntry.build(archive_obj_name, meta, wanted, self.object))
        entries.extend(archive_entries(self, archive_obj_name))
        return entries

    # ------------------------------------------------------------ many objects
    def put_files(
        self,
        path: str,
        prefix_filter: str = "",
        pattern: str = "*",
        basename: bool = False,
        prepend: str | None = None,
        recursive: bool = False,
        dry_run: bool = False,
        verbose: bool = True,
    ) -> list[str]:
        """Upload the files of a local directory as objects (16 at a time).

        Args:
            path: Local directory.
            prefix_filter: Only files whose path relative to ``path`` starts with this.
            pattern: Shell wildcard the file's name must match.
            basename: Name objects by the file name alone (else by the relative path).
            prepend: Text put before every object name (no separator added).
            recursive: Also files in sub-directories.
            dry_run: Upload nothing; return (and log) what would be uploaded.
            verbose: Log each upload at INFO.

        Returns:
            The object names, in directory-walk order.

        Raises:
            ValueError: ``path`` is not a directory.
        """
        root = os.fspath(path)
        if not os.path.isdir(root):
            raise ValueError(f"put_files: {root!r} is not a directory; expected a local directory")
        jobs: list[tuple[str, str]] = []
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            for fname in sorted(files):
                full = os.path.join(directory, fname)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                if rel.startswith(prefix_filter) and fnmatch.fnmatch(fname, pattern):
                    jobs.append(((prepend or "") + (fname if basename else rel), full))
            if not recursive:
                break
        if dry_run or verbose:
            for name, full in jobs:
                logger.info("%s %s -> %s", "would put" if dry_run else "put", full, self._url(name))
        if not dry_run:
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda job: self._client.upload_file(self._key(job[0]), job[1]), jobs))
        return [name for name, _ in jobs]

    def copy(
        self,
        to_bck: Bucket,
        prefix_filter: str = "",
        prepend: str = "",
        ext: dict[str, str] | None = None,
        dry_run: bool = False,
        force: bool = False,
        latest: bool = False,
        sync: bool = False,
        num_workers: int | None = 0,
    ) -> str:
        """Copy the objects whose names start with ``prefix_filter`` to ``to_bck``; returns a job id.

        Args:
            to_bck: Destination bucket (any profile or store).
            prefix_filter: Only these objects.
            prepend: Text put before each copied object's name.
            ext: Extension renames, e.g. ``{"jpg": "png"}`` (the bytes are copied unchanged).
            dry_run: Record the planned copies only.
            force: Not supported (no conflicting jobs); must be False.
            latest: Accepted: the store's latest version is always read.
            sync: Not supported; must be False (use ``manystore.sync``).
            num_workers: Threads (``None``/``0``: 16, ``-1``: 1).

        Raises:
            NotImplementedError: ``force`` or ``sync``.
        """
        for flag, value in (("force", force), ("sync", sync)):
            if value:
                raise NotImplementedError(f"Bucket.copy({flag}=True) of {self.name}: not supported")
        names = [e.name for e in self.list_objects_iter(prefix_filter)]
        transfer = None if dry_run else Transfer(self._client, to_bck._client)

        def work(name: str) -> int:
            return copy_one(self, name, to_bck, prepend + apply_ext(name, ext), transfer)

        def plan(name: str) -> str:
            return f"copy {self._url(name)} -> {to_bck._url(prepend + apply_ext(name, ext))}"

        return start_job(
            "copy-bucket",
            names,
            work,
            num_workers=worker_count(num_workers),
            dry_run=dry_run,
            plan_of=plan,
            cache_location=self._jobs_location,
        )

    def transform(
        self,
        etl_name: str,
        to_bck: Bucket,
        timeout: str | float | None = None,
        prefix_filter: str = "",
        prepend: str = "",
        ext: dict[str, str] | None = None,
        force: bool = False,
        dry_run: bool = False,
        latest: bool = False,
        sync: bool = False,
        num_workers: int | None = 0,
        cont_on_err: bool = False,
        etl_pipeline: list[str] | None = None,
        *,
        continue_on_error: bool = False,
        execution: str = "local",
        num_worker_processes: int | None = None,
        ray_address: str | None = None,
        etl_args: str | dict[str, Any] | None = None,
    ) -> str:
        """Apply a registered ETL to every object whose name starts with ``prefix_filter``; returns a job id.

        Each output ``to_bck/<prepend><name with ext renamed>`` is written atomically and
        records its source's version; a rerun (of a finished, failed or killed job) skips
        outputs that are current. See ``docs/batch.md`` (*ETL*).

        Args:
            etl_name: A registered ETL (``Client().etl(name).init(...)``/``.init_class()``).
            to_bck: Destination bucket (any profile or store).
            timeout: Job time limit (``"30m"``, seconds): objects not started by then fail.
                None (the default here, unlike the SDK's ``"5m"``): no limit.
            prefix_filter: Only objects whose names start with this.
            prepend: Text put before each output's name.
            ext: Extension renames of the outputs, e.g. ``{"jpg": "png"}``.
            force: Redo every output, even those recorded as current.
            dry_run: Record what would be done (``transform``/``skip``) in the job's ``planned``.
            latest: Accepted: the store's latest version is always read.
            sync: Not supported; must be False.
            num_workers: Threads (per worker process) (``None``/``0``: 16, ``-1``: 1).
            cont_on_err: Transform every object, recording failures (else stop at the first).
            etl_pipeline: ETL names applied after ``etl_name``, in order.
            continue_on_error: Same as ``cont_on_err`` (the name ``ObjectGroup`` uses).
            execution: ``"local"`` (threads, or processes) or ``"ray"`` (tasks on a Ray cluster).
            num_worker_processes: Worker processes (``None``/1: threads of this process).
            ray_address: Ray cluster with ``execution="ray"`` (None: start or join a local one).
            etl_args: Arguments each transform call gets (a dict as compact JSON); not in the SDK.

        Raises:
            LookupError: An ETL is not registered.
            TypeError: The transform cannot be sent to worker processes (e.g. a lambda).
            NotImplementedError: ``sync=True``.
        """
        from .etl_job import transform_objects

        items = [
            (meta.key[len(self._prefix) :], meta)
            for meta in self._client.list(self._key(prefix_filter))
            if meta.type == "file"
            and meta.key.startswith(self._prefix)
            and not meta.key.startswith(APPEND_DIR)
        ]
        return transform_objects(
            self,
            to_bck,
            items,
            etl_name,
            kind="etl-bucket",
            etl_pipeline=etl_pipeline,
            timeout=timeout,
            prepend=prepend,
            ext=ext,
            continue_on_error=cont_on_err or continue_on_error,
            dry_run=dry_run,
            force=force,
            sync=sync,
            num_workers=num_workers,
            execution=execution,
            num_worker_processes=num_worker_processes,
            ray_address=ray_address,
            etl_args=etl_args,
        )

    # ------------------------------------------------------------- bucket admin
    def head(self) -> dict[str, str]:
        """The bucket's properties: provider, profile, prefix, URL, and whether it holds objects."""
        present = next(iter(self.list_objects_iter()), None) is not None
        return {
            "provider": self._provider,
            "profile": self._client.profile,
            "prefix": self._prefix,
            "url": self.name,
            "present": "true" if present else "false",
        }

    def create(self, exist_ok: bool = False) -> Bucket:
        """Nothing to create: a prefix exists once it holds an object.

        Raises:
            FileExistsError: The prefix already holds objects and ``exist_ok`` is False.
        """
        if not exist_ok and next(iter(self.list_objects_iter()), None) is not None:
            raise FileExistsError(f"bucket {self.name} already holds objects (pass exist_ok=True)")
        return self

    def delete(self, missing_ok: bool = False) -> None:
        """Delete every object under the bucket's prefix.

        Raises:
            PermissionError: The bucket is a whole profile or store bucket (empty prefix):
                deleting it is refused; delete a prefix, or objects by group.
            FileNotFoundError: Nothing under the prefix and ``missing_ok`` is False.
        """
        if not self._prefix:
            raise PermissionError(
                f"Bucket.delete of {self.name}: refusing to delete the root of profile {self._client.profile!r}; "
                "expected a bucket with a prefix (e.g. s3://bucket/prefix)"
            )
        try:
            self._client.delete(self._prefix, recursive=True)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def evict(self, keep_md: bool = False) -> None:
        """Drop every object under the prefix from the profile's read cache (the store keeps them).

        Both values of ``keep_md`` do the same: a prefix has no bucket metadata to drop or keep.

        Raises:
            ValueError: The profile has no read cache.
        """
        require_cache(self._client, "evict", self.name)
        self._client._io.invalidate(self._prefix, recursive=True)

    def rename(self, to_bck_name: str) -> str:
        """Not supported: copy to the new prefix, then delete.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(f"Bucket.rename({to_bck_name!r}) of {self.name}: use copy() then delete()")

    def summary(self, *args: Any, **kwargs: Any) -> Any:
        """Not supported (AIS cluster summary).

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(
            f"Bucket.summary of {self.name}: use list_all_objects() for counts and sizes"
        )

    def info(self, *args: Any, **kwargs: Any) -> Any:
        """Not supported (AIS cluster bucket info).

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(f"Bucket.info of {self.name}: use head() or list_all_objects()")

    def write_dataset(self, *args: Any, **kwargs: Any) -> None:
        """Not supported (webdataset writing belongs to the samples layer).

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(f"Bucket.write_dataset of {self.name}: not supported")
