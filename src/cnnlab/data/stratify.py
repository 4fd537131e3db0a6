"""Stratified, seeded sampling: validation carves and train/test subsets."""
from __future__ import annotations

import hashlib
from typing import Union

import torch

from .config import count_or_fraction_error
from .errors import DataError


def derived_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator seeded from (seed, purpose), so that e.g. the val carve and the train
    subset draw independent streams and changing one never shifts the other."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def largest_remainder(total: int, sizes: list[int]) -> list[int]:
    """Split `total` over groups proportionally to the weights `sizes`; exact sum (largest
    remainder method, ties to the lower group index). With total <= sum(sizes) no group gets
    more than its size."""
    n = sum(sizes)
    if total < 0:
        raise ValueError(f"cannot take {total} items")
    if n == 0:
        return [0] * len(sizes)
    exact = [total * s / n for s in sizes]
    counts = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def resolve_count(size: Union[int, float], n: int, key: str, zero_ok: bool = True) -> int:
    """A count (int) or a fraction in (0, 1) (float) of n, as a count; the rule is DataConfig's
    (count_or_fraction_error): 1.0 or 5000.0 is a DataError, never "all" or a count.
    A positive fraction that rounds to no image at all is an error naming `key`."""
    error = count_or_fraction_error(key, size, zero_ok)
    if error:
        raise DataError(error)
    if isinstance(size, float):
        count = int(round(size * n))
        if size > 0 and count == 0:
            raise DataError(f"{key}: {size!r} of {n} images is less than one image; use a larger fraction or a count")
        return count
    return size


def stratified_split(labels: torch.Tensor, take: int, num_classes: int, seed: int, purpose: str,
                     key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose `take` positions of `labels`, per-class proportional, seeded.

    Returns (chosen, rest): sorted int64 position tensors that together cover every position.
    `key` names the config key in errors.
    """
    n = int(labels.numel())
    if not 0 <= take <= n:
        raise DataError(f"{key}: asks for {take} images but the split has only {n}; use a smaller value")
    per_class = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    counts = largest_remainder(take, [len(p) for p in per_class])
    g = derived_generator(seed, purpose)
    chosen = []
    for positions, k in zip(per_class, counts):
        perm = torch.randperm(len(positions), generator=g)
        chosen.append(positions[perm[:k]])
    picked = torch.sort(torch.cat(chosen)).values if chosen else torch.empty(0, dtype=torch.int64)
    mask = torch.ones(n, dtype=torch.bool)
    mask[picked] = False
    return picked, torch.nonzero(mask).flatten()
