"""Backbone registry: a name -> constructor and metadata, so configs never import classes.

Each backbone maps images to feature maps {"L", "M", "H"} (low, mid, high stage; docs/models.md)
and declares its input normalisation (a name of ranklist.data's transforms or a record), its default
image size and the channels at each tap.

Names with a registered prefix are resolved by that prefix's factory: `hf:<hub id or directory>` is a
Hugging Face transformers vision model (models/hf_backbone.py). A factory also gets the backbone's
saved description (the `backbone_config` kept in a model's config), so a checkpoint rebuilds its
architecture without the hub or the original directory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ranklist.data.transforms import Normalization
from ranklist.models.bn_inception import BNInception, load_bn_inception_weights
from ranklist.models.efficientnet_lite import EfficientNetLite0, EfficientNetLite1, EfficientNetLite2
from ranklist.models.hf_backbone import (
    architecture_config,
    build_hf_backbone,
    describe_source,
    saved_normalization,
    tap_channels,
)
from ranklist.models.hf_families import hf_family
from ranklist.models.small_cnn import SmallCNN


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: its builder, normalisation, default image size and tap channels."""

    build: Callable[[bool | str], nn.Module]  # pretrained (bool or weights path) -> backbone
    normalization: str | Normalization
    default_image_size: int
    tap_channels: dict[str, int]


def _bn_inception(pretrained: bool | str | Path) -> nn.Module:
    model = BNInception()
    if pretrained is True:
        raise ValueError(
            "BN-Inception's ImageNet weights are a file: fetch it with `ranklist data fetch bn_inception` and give "
            "its path as model.weights (weights/bn_inception-239d2248.pth), or set model.pretrained=false"
        )
    if pretrained:
        load_bn_inception_weights(model, pretrained)
    return model


def _flag_only(name: str, constructor: Callable[[bool], nn.Module]) -> Callable[[bool | str], nn.Module]:
    """Backbones whose weights come with a package (or do not exist) take no path."""

    def build(pretrained: bool | str) -> nn.Module:
        if not isinstance(pretrained, bool):
            raise ValueError(f"{name} takes pretrained=true/false, not {pretrained!r}")
        return constructor(pretrained)

    return build


def _spec(cls: type, build: Callable[[bool | str], nn.Module]) -> BackboneSpec:
    return BackboneSpec(build, cls.normalization, cls.default_image_size, dict(cls.tap_channels))


BACKBONES: dict[str, BackboneSpec] = {
    "bn_inception": _spec(BNInception, _bn_inception),
    "efficientnet_lite0": _spec(EfficientNetLite0, _flag_only("efficientnet_lite0", EfficientNetLite0)),
    "efficientnet_lite1": _spec(EfficientNetLite1, _flag_only("efficientnet_lite1", EfficientNetLite1)),
    "efficientnet_lite2": _spec(EfficientNetLite2, _flag_only("efficientnet_lite2", EfficientNetLite2)),
    "small_cnn": _spec(SmallCNN, _flag_only("small_cnn", SmallCNN)),
}


def _hf_spec(source: str, saved: Mapping | None) -> BackboneSpec:
    """hf:<source>: its description (the saved one, else read from the source's config files)."""
    description = dict(saved) if saved is not None else describe_source(source)
    config = architecture_config(description)

    def build(pretrained: bool | str) -> nn.Module:
        if not isinstance(pretrained, bool):
            raise ValueError(
                f"hf:{source} takes pretrained=true/false (weights come from the source), not {pretrained!r}"
            )
        return build_hf_backbone(source, pretrained, description)

    return BackboneSpec(
        build,
        saved_normalization(description),
        int(description["image_size"]),
        tap_channels(hf_family(config.model_type), config),
    )


BACKBONE_PREFIXES: dict[str, Callable[[str, Mapping | None], BackboneSpec]] = {"hf": _hf_spec}


def backbone_spec(name: str, saved: Mapping | None = None) -> BackboneSpec:
    """A registered name, or "<prefix>:<source>" for a prefix of BACKBONE_PREFIXES (`saved`: its description)."""
    prefix, colon, source = name.partition(":")
    if colon and prefix in BACKBONE_PREFIXES:
        if not source:
            raise ValueError(f"backbone {name!r} names no source after {prefix + ':'!r}")
        return BACKBONE_PREFIXES[prefix](source, saved)
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)} or hf:<hub id or directory>")
    return BACKBONES[name]


def check_weights(name: str, path: Path) -> dict[str, int]:
    """Build backbone `name` with the weights file at `path` (refused unless every tensor fits), as
    `ranklist data fetch` checks fetched weights; {"tensors": how many the backbone holds}."""
    return {"tensors": len(backbone_spec(name).build(path).state_dict())}
