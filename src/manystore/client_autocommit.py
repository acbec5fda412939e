"""Automatic commits of a profile's metadata provider (MSC 1.3.1's ``autocommit``).

A profile with a metadata provider (a manifest) keeps the files written through it pending
until :meth:`manystore.StorageClient.commit_metadata`. With ``autocommit`` in the profile
(:class:`manystore.types.AutoCommitConfig`), each client of the profile also commits

* every ``interval_minutes`` on a daemon thread, and/or
* once when the interpreter exits (``at_exit``).

The periodic thread holds the client weakly: a client that is no longer used is not kept
alive by it; once the client is collected the thread commits what is still pending and
stops. The exit hook holds the metadata provider (not the client), so updates made through
a client that is gone by then are still committed. A failed commit is logged and the
updates stay pending for the next one.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client import StorageClient
    from .types import AutoCommitConfig, MetadataProvider

__all__ = ["start_autocommit"]

logger = logging.getLogger(__name__)


def _commit(client: StorageClient | None, mp: MetadataProvider, profile: str, why: str) -> None:
    """Commit pending updates (through the client when there is one); log a failure."""
    try:
        if client is not None:
            client.commit_metadata()
        else:
            mp.commit_updates()
    except Exception as exc:  # a background commit must not die; the updates stay pending
        logger.warning("profile %s: %s commit of the metadata provider failed: %s", profile, why, exc)


def _run(
    ref: weakref.ReferenceType[StorageClient],
    mp: MetadataProvider,
    profile: str,
    seconds: float,
    stop: threading.Event,
) -> None:
    while not stop.wait(seconds):
        client = ref()
        if client is None:
            break
        _commit(client, mp, profile, "periodic")
        del client
    _commit(None, mp, profile, "final")  # the client is gone: what it left pending


def start_autocommit(client: StorageClient, config: AutoCommitConfig) -> threading.Event | None:
    """Start ``config``'s commits for ``client``.

    Args:
        client: The client whose :meth:`~manystore.StorageClient.commit_metadata` is called;
            it must have a metadata provider.
        config: When to commit.

    Returns:
        The event that stops the periodic thread (set when the client is collected), or
        ``None`` when there is no periodic commit.

    Raises:
        ValueError: ``client`` has no metadata provider.
    """
    mp = client._metadata_provider
    if mp is None:
        raise ValueError(f"profile {client.profile!r}: autocommit needs a metadata provider, got none")
    stop: threading.Event | None = None
    if config.interval_minutes:
        stop = threading.Event()
        thread = threading.Thread(
            target=_run,
            args=(weakref.ref(client), mp, client.profile, float(config.interval_minutes) * 60.0, stop),
            name=f"manystore-autocommit-{client.profile}",
            daemon=True,
        )
        thread.start()
        weakref.finalize(client, stop.set)
    if config.at_exit:
        atexit.register(_commit, None, mp, client.profile, "exit")
    return stop
