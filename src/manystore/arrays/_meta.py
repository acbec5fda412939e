"""The metadata sidecar for backends without user metadata (POSIX).

An object store keeps an array's ``dtype``/``shape``/``order``/``compression`` as the
object's user metadata. A local directory cannot, so the metadata of ``name`` lives in
the JSON file ``name.meta.json`` next to it — the suffix and format (one JSON object of
string values) of cottoncandy's own local backend, so either library reads what the
other wrote. Sidecars are hidden from the interface's listings and follow their object
through :meth:`~manystore.arrays._base.InterfaceBase._copy`, ``_move`` and ``_delete``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

#: Suffix of the sidecar holding the user metadata of an object on POSIX.
SIDECAR_SUFFIX = ".meta.json"


def sidecar_name(name: str) -> str:
    """The sidecar key of the object ``name``."""
    return name + SIDECAR_SUFFIX


def is_sidecar(name: str) -> bool:
    """True if ``name`` is a sidecar (and so hidden from listings)."""
    return name.endswith(SIDECAR_SUFFIX)


def encode_sidecar(metadata: Mapping[str, str]) -> bytes:
    """The sidecar bytes for ``metadata`` (indented JSON, as cottoncandy writes it)."""
    return json.dumps(dict(metadata), indent=4).encode()


def decode_sidecar(data: bytes, where: str) -> dict[str, str]:
    """The metadata in a sidecar's bytes.

    Raises:
        ValueError: ``data`` is not a JSON object (``where`` names the sidecar).
    """
    try:
        value = json.loads(data.decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"metadata sidecar {where!r} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"metadata sidecar {where!r} holds {type(value).__name__}, expected a JSON object")
    return {str(k): str(v) for k, v in value.items()}
