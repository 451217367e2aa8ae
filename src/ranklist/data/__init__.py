"""Datasets (the paper's four benchmarks, generic folders/CSV, the offline emoji benchmark,
Fashion-MNIST), class-balanced C x K batches, and transforms."""

from ranklist.data.datasets import ArrayDataset, ImageFileDataset
from ranklist.data.readers import READERS, build_dataset
from ranklist.data.samplers import ClassBalancedBatchSampler
from ranklist.data.transforms import NORMALIZATIONS, build_transform

__all__ = [
    "ArrayDataset", "ClassBalancedBatchSampler", "ImageFileDataset", "NORMALIZATIONS", "READERS",
    "build_dataset", "build_transform",
]
