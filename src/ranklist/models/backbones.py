"""Backbone registry: a name -> constructor and metadata, so configs never import classes.

Each backbone maps images to feature maps {"L", "M", "H"} (low, mid, high stage; docs/models.md)
and declares its input normalisation (a name of ranklist.data's transforms), its default image size
and the channels at each tap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ranklist.models.bn_inception import BNInception, load_bn_inception_weights
from ranklist.models.efficientnet_lite import EfficientNetLite0
from ranklist.models.small_cnn import SmallCNN


@dataclass(frozen=True)
class BackboneSpec:
    build: Callable[[bool | str], nn.Module]  # pretrained (bool or weights path) -> backbone
    normalization: str
    default_image_size: int
    tap_channels: dict[str, int]


def _bn_inception(pretrained: bool | str | Path) -> nn.Module:
    model = BNInception()
    if pretrained is True:
        raise ValueError(
            "BN-Inception ImageNet weights cannot be downloaded here: give the path of a converted "
            "`bninception` state dict as pretrained (or pretrained=false)"
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
    "small_cnn": _spec(SmallCNN, _flag_only("small_cnn", SmallCNN)),
}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]
