"""Length-aware batching for variable-length rows (text), used by the serving adapters.

Pure numpy, so it is tested without a server. Rows are right-padded token sequences; their
real lengths come from the padding mask.
"""

from __future__ import annotations

import numpy as np

from maas.base.triton.parameters import DEFAULT_MAX_WASTE

Arrays = dict[str, np.ndarray]


def length_buckets(lengths: list[int], max_waste: float) -> list[list[int]]:
    """Greedy buckets over rows sorted by length; each computes ≤ (1 + max_waste) × real tokens."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    buckets: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        length = max(lengths[index], 1)
        if current and (len(current) + 1) * length > (1 + max_waste) * (real + length):
            buckets.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        buckets.append(current)
    return buckets


def group_rows(
    lengths: list[int] | None, count: int, strategy: str, max_waste: float
) -> list[list[int]]:
    """Row indices per runtime call: all rows at once, or buckets of similar length."""
    if lengths is None or strategy == "longest":
        return [list(range(count))]
    return length_buckets(lengths, max_waste)


def pad_and_stack(rows: list[np.ndarray]) -> np.ndarray:
    """Stack rows, right-padding with zeros to the longest along every axis."""
    shape = tuple(max(sizes) for sizes in zip(*(row.shape for row in rows), strict=True))
    if all(row.shape == shape for row in rows):
        return np.stack(rows)
    stacked = np.zeros((len(rows), *shape), dtype=rows[0].dtype)
    for position, row in enumerate(rows):
        stacked[(position, *(slice(0, size) for size in row.shape))] = row
    return stacked


def real_length(mask: np.ndarray) -> int:
    """Positions up to the mask's last non-zero entry, at least one: what follows is padding.

    Not the mask's sum: a mask with holes or other values than 0/1 must not cut real tokens,
    and an all-zero mask still needs one position (an empty sequence fails in the runtime).
    """
    nonzero = np.flatnonzero(mask)
    return int(nonzero[-1]) + 1 if nonzero.size else 1


def split_rows(
    feeds: list[Arrays], padding_mask: str | None
) -> tuple[dict[str, list[np.ndarray]], list[int] | None]:
    """Every request's rows by input name, with padding dropped where a mask gives lengths."""
    names = list(feeds[0])
    rows = {name: [row for feed in feeds for row in feed[name]] for name in names}
    if padding_mask is None:
        return rows, None
    lengths = [real_length(row) for row in rows[padding_mask]]
    trimmed = {
        name: [row[:n] for row, n in zip(values, lengths, strict=True)]
        for name, values in rows.items()
    }
    return trimmed, lengths


def plan_calls(
    feeds: list[Arrays], padding_mask: str, strategy: str, max_waste: float = DEFAULT_MAX_WASTE
) -> tuple[list[list[int]], list[Arrays], list[int]]:
    """The runtime calls for a formed batch of variable-length requests.

    Returns each call's row indices and joined inputs, and every row's real length.
    """
    rows, lengths = split_rows(feeds, padding_mask)
    assert lengths is not None
    groups = group_rows(lengths, len(lengths), strategy, max_waste)
    joined = [
        {name: pad_and_stack([rows[name][i] for i in group]) for name in rows} for group in groups
    ]
    return groups, joined, lengths


def positions(batch: np.ndarray) -> int:
    """Positions the runtime computes for a stacked batch."""
    return int(np.prod(batch.shape))
