"""Fused projections: one Linear whose output rows stack several roles (Phi-3's qkv_proj, gate_up_proj).

Mask pruning treats a fused Linear as one (N:M groups and blocks run along a row's inputs, which all
its parts share). Structured pruning thinks in the generic roles: an attention group is rows of q, k
and v, an MLP channel a row of gate and up. This strategy translates between the two: it splits a
fused Linear's rows (or any tensor laid out like them, e.g. importances) into its parts, and turns
the rows each part keeps into the fused Linear's rows to keep.

Rows are stacked part after part, and within a part group after group: qkv_proj is
[q heads | k heads | v heads], gate_up_proj is [gate channels | up channels].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ATTENTION_PARTS = ("q", "k", "v")
MLP_PARTS = ("gate", "up")


@dataclass(frozen=True)
class FusedProjection:
    """A fused Linear: its role in the table and the generic roles stacked in its rows, in order."""

    role: str
    parts: tuple[str, ...]

    def group_rows(self, gqa_ratio: int, head_dim: int) -> tuple[int, ...]:
        """Rows one structured group holds in each part: an attention group (one KV head) has
        ratio·head_dim query rows and head_dim key and value rows; an MLP channel one row each."""
        if self.parts == ATTENTION_PARTS:
            return (gqa_ratio * head_dim, head_dim, head_dim)
        return (1,) * len(self.parts)

    def groups(self, rows: int, gqa_ratio: int, head_dim: int) -> int:
        """Groups (KV heads or channels) a fused Linear with `rows` output rows holds now."""
        return rows // sum(self.group_rows(gqa_ratio, head_dim))

    def part_sizes(self, rows: int, gqa_ratio: int, head_dim: int) -> list[int]:
        groups = self.groups(rows, gqa_ratio, head_dim)
        return [groups * part for part in self.group_rows(gqa_ratio, head_dim)]

    def split(self, tensor: torch.Tensor, gqa_ratio: int, head_dim: int) -> dict[str, torch.Tensor]:
        """A tensor laid out like the fused rows (dim 0) -> one tensor per part (views)."""
        sizes = self.part_sizes(tensor.shape[0], gqa_ratio, head_dim)
        return dict(zip(self.parts, torch.split(tensor, sizes, dim=0), strict=True))

    def rows(self, keep: dict[str, torch.Tensor], rows: int, gqa_ratio: int, head_dim: int) -> torch.Tensor:
        """Rows of each part to keep (indices within the part) -> the fused rows to keep, in order."""
        offsets = torch.tensor([0, *self.part_sizes(rows, gqa_ratio, head_dim)]).cumsum(0)
        return torch.cat([keep[part] + offsets[i] for i, part in enumerate(self.parts)])
