"""Datasets (the paper's four benchmarks, a folder per class, CSV lists, the offline emoji benchmark,
Fashion-MNIST), class-balanced C x K batches, and transforms without torchvision (docs/data.md)."""

from ranklist.data.datasets import ArrayDataset, ImageFileDataset, LabelledDataset
from ranklist.data.readers import READERS, build_dataset
from ranklist.data.samplers import ClassBalancedBatchSampler
from ranklist.data.transforms import NORMALIZATIONS, RECIPES, build_transform

__all__ = [
    "ArrayDataset", "ClassBalancedBatchSampler", "ImageFileDataset", "LabelledDataset", "NORMALIZATIONS",
    "READERS", "RECIPES", "build_dataset", "build_transform",
]
