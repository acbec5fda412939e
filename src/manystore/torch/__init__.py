"""The PyTorch layer: datasets, readers, a streaming writer and checkpoints on every backend.

Home of s3torchconnector's API (``MapDataset``/``IterableDataset``, readers,
``Writer``, ``Checkpoint``, ``dcp``, ``lightning``) and of the reference's
``torch.load``/``torch.save`` helpers. It imports only the core (``client``,
``shortcuts`` and below) and never runs when ``import manystore`` does: torch is
the optional extra ``manystore[torch]``. See ``docs/architecture.md``.
"""

from __future__ import annotations

__all__: list[str] = []
