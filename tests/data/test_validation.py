"""The validation split follows the test protocol: held-out images of shared classes, or held-out classes."""
import numpy as np
import pytest

from pipeline.data.validation import hold_out_validation, validation_size


def test_shared_classes_give_a_stratified_sample_of_images():
    labels = np.repeat(np.arange(4), 50)
    splits = np.array(["train"] * 40 + ["test"] * 10, dtype=object).tolist() * 4  # every class in test too
    got = hold_out_validation(labels, np.array(splits), 40, seed=0)
    held = np.flatnonzero(got == "val")
    assert len(held) == 40 and (np.asarray(splits)[held] == "train").all()
    assert np.bincount(labels[held]).tolist() == [10, 10, 10, 10]  # every class in proportion
    assert (got == "test").sum() == 40 and np.array_equal(got, hold_out_validation(labels, np.array(splits), 40, 0))
    assert not np.array_equal(got, hold_out_validation(labels, np.array(splits), 40, 1))  # seeded


def test_disjoint_test_classes_give_held_out_classes():
    labels = np.concatenate([np.repeat(np.arange(10), 5), np.repeat(np.arange(10, 14), 5)])
    splits = np.array(["train"] * 50 + ["test"] * 20)
    got = hold_out_validation(labels, splits, 12, seed=0)
    held = labels[got == "val"]
    assert len(held) == 15 and len(np.unique(held)) == 3  # whole classes (5 images each) until 12 are held out
    assert not set(held) & set(labels[got == "train"])  # no class on both sides


@pytest.mark.parametrize("requested, n, expected", [(0.2, 1000, 200), (150, 1000, 150), (0, 1000, 0)])
def test_the_size_is_a_count_or_a_share(requested, n, expected):
    assert validation_size(requested, n) == expected
