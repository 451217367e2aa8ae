import numpy as np
import pytest

from ranklist.data.folds import ClassSubset, class_folds, fold_splits
from ranklist.data.readers import build_dataset
from ranklist.training.config import load_config
from ranklist.training.run import build_run_model, build_splits


@pytest.mark.parametrize("n_classes, folds", [(5, 2), (10, 3), (797, 5), (8, 4)])
def test_folds_are_class_disjoint_cover_the_classes_and_are_seeded(n_classes, folds):
    classes = np.arange(100, 100 + n_classes)
    parts = class_folds(np.repeat(classes, 3), folds)  # repeated labels: the classes count once
    assert len(parts) == folds and all(len(p) >= 2 for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == classes.tolist()  # every class in exactly one fold
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert all(np.array_equal(a, b) for a, b in zip(parts, class_folds(classes, folds)))  # the same folds every time


def test_too_few_classes_for_the_folds_is_an_error_that_says_so():
    with pytest.raises(ValueError, match="5 training classes cannot make 3 folds of at least 2 classes each"):
        class_folds(np.arange(5), 3)


def test_fold_splits_validate_on_one_fold_and_train_on_the_rest(tiny_recipe):
    trainval = build_dataset("fashion_mnist", "trainval", root=load_config(tiny_recipe).data.root)
    seen = set()
    for fold in range(2):
        train, val = fold_splits(trainval, 2, fold, train_transform=None, val_transform=None)
        assert isinstance(train, ClassSubset) and not set(train.class_ids) & set(val.class_ids)
        assert set(train.class_ids) | set(val.class_ids) == set(trainval.class_ids)
        assert sorted(set(val.labels.tolist())) == list(range(len(val.class_ids)))  # numbered 0..C-1 on their own
        for i in (0, len(val) - 1):  # an item is its parent's item
            parent = int(val.index[i])
            assert np.array_equal(val[i][0].numpy(), trainval[parent][0].numpy())
            assert val.class_ids[val.labels[i]] == trainval.class_ids[trainval.labels[parent]]
        seen |= set(val.class_ids)
    assert seen == set(trainval.class_ids)  # the folds' validation classes cover the training classes


def test_a_fold_run_builds_no_test_split_and_rejects_a_fold_out_of_range(tiny_recipe):
    config = load_config(tiny_recipe, ["data.folds=2", "data.fold=1"])
    splits = build_splits(config, build_run_model(config).preprocessing)
    assert splits.queries is None and splits.gallery is None and set(splits.named()) == {"train", "val"}
    with pytest.raises(ValueError, match=r"data.fold must be in 0..1 \(data.folds=2\), got 2"):
        load_config(tiny_recipe, ["data.folds=2", "data.fold=2"])
    with pytest.raises(ValueError, match="data.folds must be 0 .off. or >= 2, got 1"):
        load_config(tiny_recipe, ["data.folds=1"])
