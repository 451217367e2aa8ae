"""Datasets (the paper's four benchmarks, a folder per class, CSV lists, the offline emoji benchmark,
Fashion-MNIST), class-balanced C x K batches, and transforms without torchvision (docs/data.md)."""

from ranklist.data.datasets import ArrayDataset, ImageFileDataset, LabelledDataset
from ranklist.data.preprocessing import Preprocessing
from ranklist.data.readers import DATASETS, DatasetSpec, build_dataset, dataset_spec, evaluation_splits
from ranklist.data.samplers import ClassBalancedBatchSampler
from ranklist.data.splits import EvaluationSplits, shared_labels
from ranklist.data.transforms import NORMALIZATIONS, RECIPES, build_transform

__all__ = [
    "DATASETS",
    "NORMALIZATIONS",
    "DatasetSpec",
    "EvaluationSplits",
    "Preprocessing",
    "RECIPES",
    "ArrayDataset",
    "ClassBalancedBatchSampler",
    "ImageFileDataset",
    "LabelledDataset",
    "build_dataset",
    "build_transform",
    "dataset_spec",
    "evaluation_splits",
    "shared_labels",
]
