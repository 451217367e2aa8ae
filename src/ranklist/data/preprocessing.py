"""The preprocessing record: how a model's input images are made, owned by the run and its checkpoints.

Built once from a run's data config and the backbone's normalisation, used for training,
validation and testing, and saved in every checkpoint, so that `evaluate`, `embed`, `index`,
`export` and `serve` prepare images exactly as the run did:

    record = Preprocessing.from_config(config.data, model.normalization)
    train_tf, test_tf = record.transform(train=True), record.transform(train=False)
    Preprocessing.from_dict(checkpoint["preprocessing"]) == record
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ranklist.data.transforms import RECIPES, ImageTransform, Normalization, default_resize, normalization


@dataclass(frozen=True)
class Preprocessing:
    """How a model's images are prepared: size, resize, recipe, normalisation, flips, EXIF handling."""

    image_size: int
    resize: int
    recipe: str = "paper"
    normalization: Normalization = field(default_factory=Normalization)
    hflip: bool = True  # training only
    # Files turned upright by their EXIF orientation before the transform. On for new runs; records
    # written before it existed read as off (their models were trained on the stored pixels).
    exif_orientation: bool = True

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown transform recipe {self.recipe!r}; choose one of {RECIPES}")
        if not 1 <= self.image_size <= self.resize:
            raise ValueError(f"need 1 <= image_size <= resize, got image_size={self.image_size}, resize={self.resize}")
        object.__setattr__(self, "normalization", normalization(self.normalization))

    @classmethod
    def create(
        cls,
        image_size: int,
        norm: str | Normalization,
        *,
        resize: int | None = None,
        recipe: str = "paper",
        hflip: bool = True,
        exif_orientation: bool = True,
    ) -> Preprocessing:
        """resize defaults to the paper's ratio (default_resize)."""
        return cls(
            image_size, resize or default_resize(image_size), recipe, normalization(norm), hflip, exif_orientation
        )

    @classmethod
    def from_config(cls, data: Any, norm: str | Normalization) -> Preprocessing:
        """From a DataConfig (image_size, resize, recipe, hflip) and the backbone's normalisation."""
        return cls.create(data.image_size, norm, resize=data.resize, recipe=data.recipe, hflip=data.hflip)

    def transform(self, train: bool, **options: Any) -> ImageTransform:
        """The training (random) or evaluation (deterministic) transform; options: rrc_scale, generator."""
        return ImageTransform(
            train,
            self.image_size,
            self.resize,
            self.normalization,
            self.recipe,
            self.hflip,
            exif_orientation=self.exif_orientation,
            **options,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON, YAML, ONNX metadata)."""
        record = asdict(self)
        record["normalization"]["mean"] = list(self.normalization.mean)
        record["normalization"]["std"] = list(self.normalization.std)
        if not self.exif_orientation:  # absent = off: records (and model fingerprints) made before it are unchanged
            del record["exif_orientation"]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Preprocessing:
        try:
            norm = record["normalization"]
            return cls(
                int(record["image_size"]),
                int(record["resize"]),
                str(record["recipe"]),
                Normalization(float(norm["scale"]), str(norm["channels"]), tuple(norm["mean"]), tuple(norm["std"])),
                bool(record.get("hflip", True)),
                bool(record.get("exif_orientation", False)),
            )
        except (KeyError, TypeError):
            raise ValueError(
                f"not a preprocessing record (needs image_size, resize, recipe, normalization): {record!r}"
            ) from None
