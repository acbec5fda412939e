"""``Client``: the entry point, constructed like the AIStore SDK's but configured by manystore.

An AIStore SDK script changes only its client construction::

    from manystore.batch import Client
    client = Client()                       # was: aistore.sdk.Client("http://ais:51080")
    bucket = client.bucket("s3://data/train")   # any manystore URL prefix

Buckets and their credentials come from the manystore configuration (the user's config
file, or the ``config`` dict given here). The SDK's constructor keywords are accepted
where they have an effect here: ``endpoint``, ``skip_verify``, ``ca_cert``, ``timeout`` and
``token`` configure native AIStore buckets (a bare bucket name with ``provider="ais"``, or an
``ais://`` URL). The others (``client_cert``, ``retry_config``, ``retry``,
``max_pool_size``) raise :class:`TypeError`: set TLS, retries and pools in the profile.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..config import StorageClientConfig
from ..urls import parse_url
from .bucket import Bucket
from .jobs import Job
from .obj import Object

if TYPE_CHECKING:
    from ..client import StorageClient
    from .etl import Etl, ETLInfo
    from .sdkbatch import Batch

__all__ = ["PROVIDER_SCHEMES", "Client"]

#: The SDK's ETL query at the end of an object URL (``?etl_name=...``).
_ETL_QUERY = re.compile(r"\?(etl_name=[^?/]*)$")

#: SDK provider names (and manystore's) -> URL scheme of a bare bucket name.
PROVIDER_SCHEMES = {
    "ais": "ais",
    "aws": "s3",
    "s3": "s3",
    "gcp": "gs",
    "gs": "gs",
    "gcs": "gs",
    "azure": "az",
    "az": "az",
}


class Client:
    """Entry point to buckets, objects and jobs (as the AIStore SDK's ``Client``).

    Args:
        endpoint: AIStore proxy URL for native ``ais`` buckets (default ``$AIS_ENDPOINT``).
        skip_verify: Skip TLS verification of the AIStore endpoint.
        ca_cert: CA bundle for the AIStore endpoint.
        client_cert: Not supported (mTLS): must be None.
        timeout: Seconds, or ``(connect, read)``, for the AIStore endpoint.
        retry_config: Not supported: set ``retry:`` in the profile; must be None.
        retry: Not supported: set ``retry:`` in the profile; must be None.
        token: AuthN token for the AIStore endpoint.
        max_pool_size: Not supported: set the provider's pool options; must be None.
        config: A manystore configuration dict (``{"profiles": {...}, "cache": {...}}``);
            default: the user's manystore/MSC config file.

    Raises:
        TypeError: An unsupported keyword was given a value.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        skip_verify: bool = False,
        ca_cert: str | None = None,
        client_cert: Any = None,
        timeout: float | tuple[float, float] | None = None,
        retry_config: Any = None,
        retry: Any = None,
        token: str | None = None,
        max_pool_size: int | None = None,
        *,
        config: dict[str, Any] | None = None,
    ) -> None:
        for name, value in (
            ("client_cert", client_cert),
            ("retry_config", retry_config),
            ("retry", retry),
            ("max_pool_size", max_pool_size),
        ):
            if value is not None:
                raise TypeError(
                    f"manystore.batch.Client({name}=...) is not supported; configure it in the manystore profile"
                )
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        self._config = config
        self._ais: dict[str, Any] = {
            k: v
            for k, v in {"endpoint": endpoint, "ca_cert": ca_cert, "timeout": timeout, "token": token}.items()
            if v is not None
        }
        if endpoint is not None:
            self._ais["skip_verify"] = skip_verify
        self._clients: dict[str, StorageClient] = {}
        self._lock = threading.Lock()
        cache = (config or {}).get("cache") or {}
        self._jobs_location: str | None = cache.get("location") if isinstance(cache, dict) else None

    def __repr__(self) -> str:
        source = "config dict" if self._config is not None else "user config"
        return f"Client({source}, ais_endpoint={self._ais.get('endpoint')!r})"

    # ---------------------------------------------------------------- resolve
    def _client_for(self, profile: str) -> StorageClient:
        from ..client import StorageClient

        with self._lock:
            client = self._clients.get(profile)
            if client is None:
                config = self._config if self._config is not None else {"profiles": {}}
                if self._ais and profile.startswith("_ais-"):
                    options = {**self._ais, "base_path": profile[len("_ais-") :]}
                    profiles = {
                        **config.get("profiles", {}),
                        profile: {"storage_provider": {"type": "ais", "options": options}},
                    }
                    config = {**config, "profiles": profiles}
                client = StorageClient(StorageClientConfig.from_dict(config, profile))
                self._clients[profile] = client
            return client

    def _resolve(self, url: str) -> tuple[StorageClient, str]:
        parsed = parse_url(url)
        if self._config is None and not (self._ais and parsed.profile.startswith("_ais-")):
            from ..shortcuts import resolve_storage_client

            return resolve_storage_client(url)
        return self._client_for(parsed.profile), parsed.path

    def _make_bucket(self, url: str) -> Bucket:
        client, key = self._resolve(url)
        provider = getattr(client._storage_provider, "provider_name", type(client._storage_provider).__name__)
        return Bucket(client, key, str(provider), self._jobs_location)

    # --------------------------------------------------------------- factories
    def bucket(self, bck_name: str, provider: str = "ais", namespace: Any = None) -> Bucket:
        """A bucket: a manystore URL prefix, or a bare bucket name of ``provider``.

        Args:
            bck_name: ``msc://profile/prefix``, ``s3://bucket/prefix``, ``gs://``, ``az://``,
                ``ais://``, a local directory (absolute, ``./`` or ``file://``), or a bare
                bucket name (``"data"``), which means ``<provider's scheme>://data``.
            provider: For a bare name: ``ais`` (default, as the SDK), ``aws``/``s3``,
                ``gcp``/``gs``, ``azure``/``az``. With a URL it must be the default or agree
                with the URL's scheme.
            namespace: Not supported (AIS remote-cluster namespaces); must be None.

        Raises:
            ValueError: Unknown ``provider``, or one that contradicts the URL's scheme.
            NotImplementedError: ``namespace`` given.
        """
        if namespace is not None:
            raise NotImplementedError(
                f"bucket({bck_name!r}, namespace={namespace!r}): AIS namespaces are not supported"
            )
        key = str(provider).lower()
        if key not in PROVIDER_SCHEMES:
            raise ValueError(
                f"bucket({bck_name!r}): provider {provider!r}; expected one of {sorted(PROVIDER_SCHEMES)}"
            )
        if "://" in bck_name or bck_name.startswith(("/", ".", "~")):
            scheme = bck_name.split("://", 1)[0] if "://" in bck_name else "file"
            if key != "ais" and scheme in PROVIDER_SCHEMES.values() and scheme != PROVIDER_SCHEMES[key]:
                raise ValueError(
                    f"bucket({bck_name!r}): provider {provider!r} contradicts the URL's scheme {scheme!r}"
                )
            url = bck_name
            if bck_name.startswith((".", "~")):
                url = os.path.abspath(os.path.expanduser(bck_name))
            return self._make_bucket(url)
        return self._make_bucket(f"{PROVIDER_SCHEMES[key]}://{bck_name}")

    def get_object_from_url(self, url: str) -> Object:
        """The object at ``url`` (its bucket is the profile's root; no request is made).

        A URL ending in the SDK's ETL query (``?etl_name=...[&etl_pipeline=...][&etl_args=...]``,
        as :meth:`Bucket.list_urls` makes) gives an object whose readers apply that ETL.
        """
        etl = None
        match = _ETL_QUERY.search(url)
        if match is not None:
            from .etl import Etl
            from .etl_apply import ETLConfig

            query = {k: v[-1] for k, v in parse_qs(match.group(1)).items()}
            chosen = Etl(self, query["etl_name"])
            chosen._pipeline = [p for p in query.get("etl_pipeline", "").split(",") if p]
            etl = ETLConfig(chosen, query.get("etl_args") or None)
            url = url[: match.start()]
        client, key = self._resolve(url)
        provider = getattr(client._storage_provider, "provider_name", type(client._storage_provider).__name__)
        bucket = Bucket(client, "", str(provider), self._jobs_location)
        return Object(bucket, key, etl=etl)

    def fetch_object_by_url(self, url: str) -> Object:
        """Deprecated SDK name of :meth:`get_object_from_url`."""
        return self.get_object_from_url(url)

    def job(self, job_id: str = "", job_kind: str = "") -> Job:
        """The job with id ``job_id`` (started by a group or bucket operation on this machine)."""
        return Job(job_id, job_kind, self._jobs_location)

    def batch(
        self,
        objects: Object | str | list[Any] | None = None,
        bucket: Bucket | None = None,
        output_format: str = ".tar",
        cont_on_err: bool = True,
        only_obj_name: bool = False,
        streaming_get: bool = True,
        colocation: int = 0,
        *,
        workers: int | None = None,
        byte_budget: int | None = None,
    ) -> Batch:
        """Get-Batch: many objects and archive members, fetched concurrently, delivered in request order.

        Returns a :class:`~manystore.batch.sdkbatch.Batch` (as the SDK's): ``add(...)`` more
        items (archive members, byte ranges, other buckets), then iterate ``get()`` for
        ``(info, bytes)`` pairs or read ``get(raw=True)`` as one archive stream.

        Args:
            objects: An :class:`Object`, a name, or a list of them (names need ``bucket``).
            bucket: Default bucket of names.
            output_format: Archive format of ``get(raw=True)``: ``.tar``, ``.tgz``/``.tar.gz``, ``.zip``.
            cont_on_err: Report a failed item in place; False raises the first failure.
            only_obj_name: Name archive members by the object name alone.
            streaming_get: False checks every item before delivering the first.
            colocation: The SDK's hint about AIS targets; only 0.
            workers: Fetching threads (default 16).
            byte_budget: Bound on bytes fetched and not yet delivered (default 64 MiB).

        Raises:
            ValueError: Bad options, or names without ``bucket``.
            NotImplementedError: A non-zero ``colocation``.
        """
        from .getbatch import DEFAULT_BYTE_BUDGET, DEFAULT_WORKERS
        from .sdkbatch import Batch

        return Batch(
            self,
            objects,
            bucket,
            output_format,
            cont_on_err,
            only_obj_name,
            streaming_get,
            colocation,
            workers=workers or DEFAULT_WORKERS,
            byte_budget=byte_budget or DEFAULT_BYTE_BUDGET,
        )

    def etl(self, etl_name: str) -> Etl:
        """The ETL ``etl_name`` (no request; register it with ``.init(fn)`` or ``.init_class()``).

        Raises:
            ValueError: An invalid name (6-32 characters of ``[a-z0-9-]``, as AIS).
        """
        from .etl import Etl

        return Etl(self, etl_name)

    def list_etls(self, stages: list[str] | None = None) -> list[ETLInfo]:
        """ETLs registered in this process or on this machine whose stage is in ``stages`` (default ``["Running"]``)."""
        from .etl import list_etls

        return list_etls(self._jobs_location, stages)

    def cluster(self) -> Any:
        """Not supported: there is no AIStore cluster behind these buckets.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError("Client.cluster(): manystore buckets have no AIStore cluster")

    def dsort(self, dsort_id: str = "") -> Any:
        """Not supported (AIS distributed sort).

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(f"Client.dsort({dsort_id!r}): AIS distributed sort is not supported")
