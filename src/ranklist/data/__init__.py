"""Datasets (the paper's four benchmarks, a folder per class, CSV lists, the offline emoji benchmark,
Fashion-MNIST), class-balanced C x K batches, and transforms without torchvision (docs/data.md)."""

from ranklist.data.datasets import ArrayDataset, ImageFileDataset, LabelledDataset
from ranklist.data.readers import READERS, build_dataset
from ranklist.data.samplers import ClassBalancedBatchSampler
from ranklist.data.transforms import NORMALIZATIONS, RECIPES, build_transform

__all__ = [
    "NORMALIZATIONS",
    "READERS",
    "RECIPES",
    "ArrayDataset",
    "ClassBalancedBatchSampler",
    "ImageFileDataset",
    "LabelledDataset",
    "build_dataset",
    "build_transform",
]
