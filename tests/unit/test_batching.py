from __future__ import annotations

import numpy as np
import pytest

from maas.base.served.batching import (
    group_rows,
    length_buckets,
    pad_and_stack,
    positions,
    real_length,
    split_rows,
)


def test_length_buckets_keep_each_bucket_within_the_waste_bound() -> None:
    lengths = [3, 120, 5, 7, 118, 4, 60, 64]
    buckets = length_buckets(lengths, max_waste=0.25)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(len(lengths)))
    for bucket in buckets:
        computed = len(bucket) * max(lengths[i] for i in bucket)
        assert computed <= 1.25 * sum(lengths[i] for i in bucket)


def test_length_buckets_put_everything_in_one_call_when_lengths_are_equal() -> None:
    assert length_buckets([9, 9, 9, 9], max_waste=0.25) == [[0, 1, 2, 3]]


def test_group_rows_pads_to_longest_when_strategy_is_longest() -> None:
    assert group_rows([3, 100, 4], 3, "longest", 0.25) == [[0, 1, 2]]


def test_group_rows_is_one_call_for_fixed_size_rows() -> None:
    assert group_rows(None, 4, "buckets", 0.25) == [[0, 1, 2, 3]]


def test_pad_and_stack_right_pads_with_zeros() -> None:
    stacked = pad_and_stack([np.array([1, 2, 3]), np.array([4])])
    assert stacked.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert positions(stacked) == 6


def test_split_rows_drops_each_rows_padding_using_the_mask() -> None:
    feeds = [
        {"input_ids": np.array([[101, 7, 102, 0]]), "attention_mask": np.array([[1, 1, 1, 0]])},
        {
            "input_ids": np.array([[101, 102], [101, 9]]),
            "attention_mask": np.array([[1, 1], [1, 1]]),
        },
    ]
    rows, lengths = split_rows(feeds, "attention_mask")
    assert lengths == [3, 2, 2]
    assert [row.tolist() for row in rows["input_ids"]] == [[101, 7, 102], [101, 102], [101, 9]]


@pytest.mark.parametrize("waste", [0.0, 0.1, 1.0])
def test_length_buckets_never_lose_or_repeat_rows(waste: float) -> None:
    lengths = list(np.random.default_rng(0).integers(1, 300, size=200))
    buckets = length_buckets([int(n) for n in lengths], waste)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(200))


def test_a_rows_length_ends_at_its_last_real_token_and_is_never_zero() -> None:
    assert real_length(np.array([1, 1, 1, 0, 0])) == 3
    assert real_length(np.array([1, 0, 1, 0])) == 3  # a hole is not the end
    assert real_length(np.array([0, 0, 2, 0])) == 3  # any non-zero value counts
    assert real_length(np.array([0, 0, 0])) == 1  # an empty sequence would fail in the runtime
