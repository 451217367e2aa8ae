"""A model as an ONNX graph: normalised images [B, 3, S, S] (any B) in, the evaluation embedding and
each level's raw embedding out, with the preprocessing record and the model's fingerprint in the
metadata, so a runtime without ranklist's model code still prepares images exactly as the run did.

    export_onnx(load_model("best.pt"), "model.onnx")
    info = read_onnx_info("model.onnx")      # .preprocessing, .fingerprint, .levels, .dim
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ranklist.atomic import atomic_path
from ranklist.data.preprocessing import Preprocessing
from ranklist.errors import require
from ranklist.models.fingerprint import ModelFingerprint, model_fingerprint

INPUT = "images"
OUTPUT_EMBEDDING = "embedding"
OPSET = 18  # Resize's antialias attribute (the bicubic antialiased resize of some ViT position embeddings)
KEY = "ranklist"  # metadata key: JSON of OnnxModelInfo


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported ONNX file records: preprocessing, model fingerprint, levels, dimension, config."""

    preprocessing: Preprocessing
    fingerprint: ModelFingerprint
    levels: tuple[str, ...]
    dim: int  # of the evaluation embedding
    model_config: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(
            {
                "preprocessing": self.preprocessing.to_dict(),
                "fingerprint": self.fingerprint.to_dict(),
                "levels": list(self.levels),
                "dim": self.dim,
                "model_config": self.model_config,
            }
        )


class _Exported(nn.Module):
    """forward(images) -> (evaluation embedding, *raw levels), a tuple as ONNX wants."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from ranklist.models import evaluation_embedding

        outputs = self.model(images)
        return (evaluation_embedding(outputs), *(outputs[level] for level in self.model.levels))


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = OPSET, replace: bool = False) -> OnnxModelInfo:
    """Write `model` (an EmbeddingModel) as ONNX, atomically; it is traced in eval mode on the CPU,
    and left as it was (mode and device). An existing file is replaced only when `replace`."""
    require("onnx", "ONNX export")
    from torch.onnx import _constants

    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"the ONNX file must end in .onnx, got {path}")
    if path.is_dir() or (os.path.lexists(path) and not replace):
        raise ValueError(
            f"{path} already exists: refusing to overwrite it; pass --replace (replace=True) or choose another path"
        )
    if not _constants.ONNX_MIN_OPSET <= opset <= _constants.ONNX_MAX_OPSET:
        raise ValueError(
            f"opset {opset} is outside what this torch exports "
            f"({_constants.ONNX_MIN_OPSET}..{_constants.ONNX_MAX_OPSET}); "
            f"the default {OPSET} suits every ranklist backbone"
        )
    was_training, device = model.training, next(model.parameters()).device
    try:
        return _export(model.to("cpu").eval(), path, opset)
    except torch.onnx.OnnxExporterError as error:  # an operator the chosen opset lacks
        raise ValueError(
            f"ONNX export at opset {opset} failed: {' '.join(str(error).split()).rstrip('.')}; "
            f"the default opset {OPSET} suits every ranklist backbone"
        ) from None
    finally:
        model.to(device).train(was_training)


def _bicubic_antialiased(g: Any, image: Any, output_size: Any, align_corners: Any, scale_factors: Any) -> Any:
    """aten::_upsample_bicubic2d_aa (DINOv2-with-registers resamples its position embeddings with it)
    as ONNX Resize, cubic, antialiased, with PyTorch's antialias kernel coefficient -0.5."""
    from torch.onnx import symbolic_helper as helper

    if helper._maybe_get_const(align_corners, "b"):
        raise ValueError("ONNX export: an antialiased bicubic resize with align_corners=True has no ONNX equivalent")
    empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
    batch_channels = helper._slice_helper(g, g.op("Shape", image), axes=[0], starts=[0], ends=[2])
    size = g.op("Cast", output_size, to_i=7)  # int64
    sizes = g.op("Concat", batch_channels, size, axis_i=0)
    return g.op(
        "Resize",
        image,
        empty,
        empty,
        sizes,
        mode_s="cubic",
        antialias_i=1,
        cubic_coeff_a_f=-0.5,
        exclude_outside_i=1,
        coordinate_transformation_mode_s="half_pixel",
        nearest_mode_s="floor",
    )


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """File descriptors 1 and 2 sent to /dev/null for the block: the exporter's C++ side writes its
    whole graph there when an operator is missing (the error raised says what failed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    try:
        with open(os.devnull, "wb") as null:
            for fd in (1, 2):
                os.dup2(null.fileno(), fd)
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _export(model: nn.Module, path: Path, opset: int) -> OnnxModelInfo:
    import onnx

    if opset >= 18:
        torch.onnx.register_custom_op_symbolic("aten::_upsample_bicubic2d_aa", _bicubic_antialiased, opset)

    size = model.preprocessing.image_size
    example = torch.zeros(2, 3, size, size)
    names = [OUTPUT_EMBEDDING, *model.levels]
    wrapped = _Exported(model).eval()
    with torch.no_grad():
        dim = int(wrapped(example)[0].shape[1])
    info = OnnxModelInfo(
        model.preprocessing,
        model_fingerprint(model),
        tuple(model.levels),
        dim,
        {k: v for k, v in model.config.items() if k != "pretrained"},
    )
    # The tracer's notes on shape arithmetic are ignored (the batch stays dynamic), and the graph dump
    # it prints when an operator is missing is kept from the terminal (the error says what failed).
    with atomic_path(path) as tmp, warnings.catch_warnings(), _native_output_silenced():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (example,),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT],
            output_names=names,
            dynamic_axes={INPUT: {0: "batch"}, **{name: {0: "batch"} for name in names}},
        )
        graph = onnx.load(str(tmp))
        for key, value in ((KEY, info.to_json()), ("preprocessing", json.dumps(info.preprocessing.to_dict()))):
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
    return info


def read_onnx_info(path: str | Path) -> OnnxModelInfo:
    """The metadata `export_onnx` stored; a file without it is a ValueError naming the file."""
    onnx = require("onnx", "reading an ONNX model")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf decode errors of a corrupt or foreign file
        raise ValueError(f"cannot read ONNX model {path}: {error}") from None
    props = {entry.key: entry.value for entry in graph.metadata_props}
    if KEY not in props:
        raise ValueError(f"{path} was not exported by ranklist (no '{KEY}' metadata); export it with ranklist export")
    record = json.loads(props[KEY])
    return OnnxModelInfo(
        Preprocessing.from_dict(record["preprocessing"]),
        ModelFingerprint.from_dict(record["fingerprint"]),
        tuple(record["levels"]),
        int(record["dim"]),
        dict(record["model_config"]),
    )
