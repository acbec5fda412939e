"""Provider bundles: ready-made provider sets for a profile (``ProviderBundle``, ``ProviderBundleV2``).

Documented and imported as ``manystore.types.ProviderBundle`` etc. (MSC's
``multistorageclient.types``); they live here to keep :mod:`manystore.types` small.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .sync_types import Replica

if TYPE_CHECKING:  # manystore.types imports this module: no import back at run time
    from .types import CredentialsProvider, MetadataProvider, StorageProviderConfig

__all__ = ["ProviderBundle", "ProviderBundleV2", "StorageBackend"]


class ProviderBundle(ABC):
    """A ready-made set of storage, credentials and metadata providers for one profile.

    :attr:`replicas` is not abstract (bundles written for older releases need not define it).
    """

    @property
    @abstractmethod
    def storage_provider_config(self) -> StorageProviderConfig:
        """Type and options of the storage provider to build."""

    @property
    @abstractmethod
    def credentials_provider(self) -> CredentialsProvider | None:
        """The credentials provider, if any."""

    @property
    @abstractmethod
    def metadata_provider(self) -> MetadataProvider | None:
        """The metadata provider, if any."""

    @property
    def replicas(self) -> list[Replica]:
        """The profile's replicas (profiles of the config given with the bundle); none by default."""
        return []


@dataclass
class StorageBackend:
    """One storage backend of a :class:`ProviderBundleV2`: its provider, credentials and replicas.

    Attributes:
        storage_provider_config: Type and options of the storage provider to build.
        credentials_provider: The credentials provider, if any.
        replicas: Replica descriptions of this backend (as in MSC 1.3.1; see
            :meth:`manystore.StorageClientConfig.from_provider_bundle` for what is supported).
    """

    storage_provider_config: StorageProviderConfig
    credentials_provider: CredentialsProvider | None = None
    replicas: list[Replica] = field(default_factory=list)


class ProviderBundleV2(ABC):
    """A ready-made set of providers for one profile over one or more storage backends."""

    @property
    @abstractmethod
    def storage_backends(self) -> dict[str, StorageBackend]:
        """Backend name -> :class:`StorageBackend`; at least one."""

    @property
    @abstractmethod
    def metadata_provider(self) -> MetadataProvider | None:
        """The metadata provider (required by MSC when there are several backends)."""
