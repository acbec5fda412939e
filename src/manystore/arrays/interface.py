"""``get_interface`` and :class:`DefaultInterface`: cottoncandy's entry points on every backend."""

from __future__ import annotations

import os
import re
from typing import Any

from ..client import StorageClient
from ..config import StorageClientConfig
from ._base import THREADS
from .array import ArrayInterface
from .fs import FileSystemInterface

#: Profile name of the implicit profiles built by :func:`get_interface`.
_PROFILE = "arrays"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://")


class DefaultInterface(ArrayInterface, FileSystemInterface):
    """cottoncandy's default interface: basic objects, arrays and the file-system calls."""


def _s3_profile(
    base_path: str,
    access_key: str | None,
    secret_key: str | None,
    endpoint_url: str | None,
    region: str | None,
    extra: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    options: dict[str, Any] = {"base_path": base_path, **(extra or {})}
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    options["region_name"] = region or "us-east-1"
    profile: dict[str, Any] = {"storage_provider": {"type": "s3", "options": options}}
    if retry:
        profile["retry"] = retry
    if access_key or secret_key:
        if not (access_key and secret_key):
            raise ValueError("ACCESS_KEY and SECRET_KEY go together: got only one of them")
        profile["credentials_provider"] = {
            "type": "S3Credentials",
            "options": {"access_key": access_key, "secret_key": secret_key},
        }
    return profile


def _botocore_config(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """S3 provider options and a retry section from a botocore ``Config`` (cottoncandy's ``config=``).

    Raises:
        ValueError: A setting manystore cannot apply (named).
    """
    if config is None:
        return {}, {}
    options: dict[str, Any] = {}
    for name in ("connect_timeout", "read_timeout", "max_pool_connections"):
        value = getattr(config, name, None)
        if value is not None:
            options[name] = value
    retry: dict[str, Any] = {}
    retries = getattr(config, "retries", None) or {}
    if retries.get("max_attempts") is not None:
        retry["attempts"] = int(retries["max_attempts"]) + 1  # botocore counts retries, manystore attempts
    signature = getattr(config, "signature_version", None)
    if signature not in (None, "s3v4", "v4"):
        raise ValueError(
            f"config.signature_version={signature!r}: manystore signs S3 requests with SigV4 only"
        )
    return options, retry


def _client(profile: dict[str, Any]) -> StorageClient:
    return StorageClient(StorageClientConfig.from_dict({"profiles": {_PROFILE: profile}}, _PROFILE))


def get_interface(
    target: str | StorageClient | None = None,
    ACCESS_KEY: str | None = None,
    SECRET_KEY: str | None = None,
    endpoint_url: str | None = None,
    force_bucket_creation: bool = False,
    verbose: bool = True,
    backend: str = "s3",
    *,
    bucket_name: str | None = None,
    prefix: str = "",
    region_name: str | None = None,
    threads: int = THREADS,
    encryption: str | None = None,
    key: Any = None,
    **kwargs: Any,
) -> DefaultInterface:
    """An interface to the objects under ``target``, as cottoncandy's ``get_interface``.

    Args:
        target: A manystore URL prefix (``msc://profile/prefix``, ``s3://bucket/prefix``,
            ``gs://…``, ``az://…``, ``file:///dir``), a local directory (starting with
            ``/``, ``.`` or ``~``, or any name with ``backend='local'``), a
            :class:`~manystore.client.StorageClient`, or — as in cottoncandy — a bare
            bucket name (``"bucket"`` or ``"bucket/prefix"``) on S3.
        ACCESS_KEY: S3 access key for a bucket name or ``s3://`` URL (else the usual
            credential chain: environment, config files).
        SECRET_KEY: S3 secret key, with ``ACCESS_KEY``.
        endpoint_url: S3 endpoint for a bucket name or ``s3://`` URL (e.g. a local gateway).
        force_bucket_creation: Create a missing local directory; on object stores a
            missing bucket raises :class:`NotImplementedError` (no provider creates
            buckets: create it with the store's own tools); an existing one is used.
        verbose: Print the interface's location once built (as cottoncandy does).
        backend: How a bare ``target`` is read: ``'s3'`` (a bucket) or ``'local'`` (a
            directory). cottoncandy's ``'gdrive'`` is not supported.
        bucket_name: cottoncandy's name of ``target`` (keyword only; give one of them).
        prefix: Key prefix under a ``StorageClient`` target.
        region_name: S3 region of an implicit S3 profile (default ``us-east-1``).
        threads: Default number of parallel requests per call.
        encryption: ``"AES"`` or ``"RSA"``: return an
            :class:`~manystore.arrays.crypto.EncryptedInterface` (everything uploaded
            through it is AES-256-GCM ciphertext at rest); ``key`` is then required.
        key: The user's AES key or RSA key (see :func:`~manystore.arrays.crypto.generate_key`);
            giving it without ``encryption`` means AES.
        **kwargs: cottoncandy passes these to botocore; here ``config=`` (a
            ``botocore.config.Config`` or any object with its attributes) sets the implicit
            S3 profile's ``connect_timeout``, ``read_timeout``, ``max_pool_connections`` and
            retry ``max_attempts``; any other keyword raises ``TypeError``.

    Raises:
        ValueError: Conflicting or unsupported arguments.
        NotImplementedError: A missing bucket with ``force_bucket_creation`` on an object store.
        FileNotFoundError: A local directory that does not exist (without
            ``force_bucket_creation``).
    """
    if bucket_name is not None:
        if target is not None:
            raise ValueError(f"got both target={target!r} and bucket_name={bucket_name!r}; pass one")
        target = bucket_name
    if target is None or target == "":
        raise ValueError("target is empty; expected a URL, a directory or a bucket name")
    if backend not in ("s3", "local"):
        raise ValueError(f"backend={backend!r}: expected 's3' or 'local' ('gdrive' is not supported)")
    unknown = sorted(set(kwargs) - {"config"})
    if unknown:
        raise TypeError(f"get_interface() got an unexpected keyword argument {unknown[0]!r}")
    s3_options, retry = _botocore_config(kwargs.get("config"))
    if isinstance(target, StorageClient):
        if s3_options or retry:
            raise ValueError("config= applies to a bucket name or s3:// URL, not to a StorageClient")
        interface = DefaultInterface(target, prefix, threads=threads)
    else:
        if prefix:
            raise ValueError(f"prefix={prefix!r} goes with a StorageClient target; put it in the URL instead")
        interface = _from_string(
            str(target),
            ACCESS_KEY,
            SECRET_KEY,
            endpoint_url,
            force_bucket_creation,
            backend,
            region_name,
            threads,
            s3_options,
            retry,
        )
    if force_bucket_creation and not interface.uses_sidecars and not _bucket_exists(interface):
        provider = interface.client.config.storage_provider
        raise NotImplementedError(
            f"force_bucket_creation=True: the bucket of {provider!r} does not exist and "
            f"{type(provider).__name__} cannot create buckets (manystore's providers have no "
            "bucket-creation call); create it with the store's own tools"
        )
    if encryption is not None or key is not None:
        from .crypto import EncryptedInterface

        interface = EncryptedInterface(
            interface.client, interface.prefix, encryption=encryption or "AES", key=key, threads=threads
        )
    if verbose:
        print(f"manystore.arrays: {interface.client.url_prefix}{interface.prefix}")
    return interface


def get_browser(
    target: str | StorageClient | None = None,
    ACCESS_KEY: str | None = None,
    SECRET_KEY: str | None = None,
    endpoint_url: str | None = None,
    **kwargs: Any,
) -> Any:
    """A tab-completable view of the objects under ``target``, as cottoncandy's ``get_browser``.

    Args:
        target: What :func:`get_interface` takes (a bucket name, URL, directory or client).
        ACCESS_KEY: As for :func:`get_interface`.
        SECRET_KEY: As for :func:`get_interface`.
        endpoint_url: As for :func:`get_interface`.
        **kwargs: Further :func:`get_interface` keywords (``bucket_name=``, ``config=``, ...).

    Returns:
        The root :class:`~manystore.arrays.browser.Directory`.
    """
    kwargs.setdefault("verbose", False)
    return get_interface(target, ACCESS_KEY, SECRET_KEY, endpoint_url, **kwargs).get_browser()


def _from_string(
    target: str,
    access_key: str | None,
    secret_key: str | None,
    endpoint_url: str | None,
    force: bool,
    backend: str,
    region: str | None,
    threads: int,
    s3_options: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
) -> DefaultInterface:
    explicit_s3 = bool(access_key or secret_key or endpoint_url or region)
    if (s3_options or retry) and (target.startswith(("file://", "/", ".", "~")) or backend == "local"):
        raise ValueError(f"config= applies to S3 buckets, not to the local directory {target!r}")
    explicit_s3 = explicit_s3 or bool(s3_options or retry)
    if target.startswith(("file://", "/", ".", "~")) or backend == "local":
        path = os.path.abspath(
            os.path.expanduser(target[len("file://") :] if target.startswith("file://") else target)
        )
        if force:
            os.makedirs(path, exist_ok=True)
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"local directory {path!r} does not exist (force_bucket_creation=True makes it)"
            )
        client = _client({"storage_provider": {"type": "file", "options": {"base_path": path}}})
        return DefaultInterface(client, "", threads=threads)
    if target.startswith("s3://") and explicit_s3:
        base = target[len("s3://") :].strip("/")
        client = _client(_s3_profile(base, access_key, secret_key, endpoint_url, region, s3_options, retry))
        return DefaultInterface(client, "", threads=threads)
    if _URL.match(target):
        if explicit_s3:
            raise ValueError(
                f"target {target!r}: ACCESS_KEY/SECRET_KEY/endpoint_url/region_name go with a bucket "
                "name or an s3:// URL; configure other stores in a profile"
            )
        from ..shortcuts import resolve_storage_client

        client, path = resolve_storage_client(target)
        return DefaultInterface(client, path, threads=threads)
    client = _client(
        _s3_profile(target.strip("/"), access_key, secret_key, endpoint_url, region, s3_options, retry)
    )
    return DefaultInterface(client, "", threads=threads)


def _bucket_exists(interface: DefaultInterface) -> bool:
    try:
        next(iter(interface.client.list("", include_directories=True)), None)
    except (FileNotFoundError, PermissionError):
        return False
    return True
