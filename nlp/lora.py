"""Low-rank adapters (LoRA) for ``nn.Linear``: train a few thousand numbers, ship kilobytes.

Adapters are merged into a copy of the weights at load time, so inference costs nothing extra.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """``base(x) + (x A^T B^T) * alpha / rank`` with ``base`` frozen; B starts at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        for p in self.base.parameters():
            p.requires_grad_(False)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_a.T @ self.lora_b.T) * self.scaling

    def delta(self) -> torch.Tensor:
        """The weight update this adapter stands for (``out x in``)."""
        return (self.lora_b @ self.lora_a) * self.scaling


def _parent_and_name(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, name = path.rpartition(".")
    return (root.get_submodule(parent_path) if parent_path else root), name


def add_lora(
    root: nn.Module, targets: tuple[str, ...], rank: int, alpha: float, dropout: float = 0.0
) -> list[str]:
    """Wrap every ``nn.Linear`` under ``root`` whose path ends with a target; return their paths."""
    paths = [
        path
        for path, module in root.named_modules()
        if isinstance(module, nn.Linear) and path.endswith(targets)
    ]
    if not paths:
        raise ValueError(f"no nn.Linear under the module matches {targets}")
    for path in paths:
        parent, name = _parent_and_name(root, path)
        setattr(parent, name, LoRALinear(getattr(parent, name), rank, alpha, dropout))
    return paths


def lora_state(root: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter matrices only, keyed ``<path>.lora_a`` / ``<path>.lora_b``."""
    return {
        f"{path}.{name}": getattr(module, name).detach().clone().contiguous()
        for path, module in root.named_modules()
        if isinstance(module, LoRALinear)
        for name in ("lora_a", "lora_b")
    }


def merge_lora_state(root: nn.Module, state: dict[str, torch.Tensor], scaling: float) -> None:
    """Add saved adapters into the plain ``nn.Linear`` weights of ``root`` in place."""
    paths = sorted({key.rsplit(".", 1)[0] for key in state})
    for path in paths:
        module = root.get_submodule(path)
        if not isinstance(module, nn.Linear):
            raise ValueError(f"adapter target {path!r} is not an nn.Linear")
        a, b = state[f"{path}.lora_a"], state[f"{path}.lora_b"]
        if a.shape[1] != module.in_features or b.shape[0] != module.out_features:
            raise ValueError(f"adapter {path!r} does not fit the layer's shape")
        with torch.no_grad():
            module.weight += (b.float() @ a.float()).to(module.weight.dtype) * scaling
