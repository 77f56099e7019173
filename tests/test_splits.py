"""Seeded splits: exact counts, determinism, and no identity in two splits."""

import numpy as np
import pytest

from fairlatent.data.splits import (
    check_nonempty,
    identity_split,
    parse_fractions,
    random_split,
    stratified_subset,
)
from fairlatent.errors import FairlatentError


def test_parse_fractions_accepts_and_rejects():
    assert parse_fractions("0.7,0.15,0.15") == (0.7, 0.15, 0.15)
    assert parse_fractions([0.5, 0.5], names=("a", "b")) == (0.5, 0.5)
    for bad, msg in [("0.7,0.3", "expected 3"), ("0.5,0.5,0.5", "sum to 1"), ("a,b,c", "comma-separated"),
                     ("1.2,-0.1,-0.1", "non-negative")]:
        with pytest.raises(FairlatentError, match=msg):
            parse_fractions(bad)


def test_random_split_counts_are_largest_remainder_and_seeded():
    s = random_split(101, (0.7, 0.15, 0.15), seed=3)
    # 70.7, 15.15, 15.15 -> floors 70, 15, 15 and the one leftover row goes to the largest remainder (train).
    assert [int((s == k).sum()) for k in ("train", "val", "test")] == [71, 15, 15]
    assert np.array_equal(s, random_split(101, (0.7, 0.15, 0.15), seed=3))
    assert not np.array_equal(s, random_split(101, (0.7, 0.15, 0.15), seed=4))


@pytest.mark.parametrize("seed", range(8))
def test_identity_split_never_shares_an_identity(seed):
    g = np.random.default_rng(100 + seed)
    groups = g.integers(0, 300, size=2000)  # ~6.7 images per identity, uneven
    s = identity_split(groups, (0.7, 0.15, 0.15), seed)
    for name in ("train", "val", "test"):
        others = set(groups[s != name])
        assert not (set(groups[s == name]) & others)
    # Fractions of images are met to within the largest identity's size (midpoint assignment).
    biggest = np.bincount(groups).max()
    for name, f in zip(("train", "val", "test"), (0.7, 0.15, 0.15)):
        assert abs((s == name).sum() - f * len(groups)) <= biggest


def test_identity_split_deterministic_and_order_independent():
    groups = np.repeat(np.arange(50), 4)
    a = identity_split(groups, (0.6, 0.2, 0.2), seed=7)
    assert np.array_equal(a, identity_split(groups, (0.6, 0.2, 0.2), seed=7))
    assert not np.array_equal(a, identity_split(groups, (0.6, 0.2, 0.2), seed=8))
    perm = np.random.default_rng(0).permutation(len(groups))
    b = identity_split(groups[perm], (0.6, 0.2, 0.2), seed=7)
    # Each identity lands in the same split whatever the row order.
    assert dict(zip(groups[perm], b)) == dict(zip(groups, a))
    # 50 equal identities of 4 images: exactly 30/10/10 identities.
    assert [int((a == k).sum()) for k in ("train", "val", "test")] == [120, 40, 40]


def test_identity_split_string_groups_and_empty_split_error():
    groups = np.array(["ann", "ann", "bob"], dtype=object)
    s = identity_split(groups, (0.4, 0.3, 0.3), seed=0)
    assert s[0] == s[1]
    with pytest.raises(FairlatentError, match="is empty"):
        check_nonempty(s, (0.4, 0.3, 0.3), ("train", "val", "test"), "tiny")


def test_stratified_subset_is_proportional_and_seeded():
    strata = np.array(["a"] * 600 + ["b"] * 300 + ["c"] * 100)
    idx = stratified_subset(strata, 100, seed=1)
    assert len(idx) == 100 and len(set(idx)) == 100 and np.all(np.diff(idx) > 0)
    assert [int((strata[idx] == k).sum()) for k in "abc"] == [60, 30, 10]
    assert np.array_equal(idx, stratified_subset(strata, 100, seed=1))
    assert not np.array_equal(idx, stratified_subset(strata, 100, seed=2))
    assert np.array_equal(stratified_subset(strata, 5000, seed=1), np.arange(1000))
