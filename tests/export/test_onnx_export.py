"""ONNX export: parity with PyTorch through onnxruntime on real images, for every backbone family."""

import json
import re
import warnings

import numpy as np
import pytest
import torch

from ranklist.cli import main
from ranklist.export import export_onnx, read_onnx_info
from ranklist.models import BACKBONES, build_model, evaluation_embedding, load_model
from ranklist.models.fingerprint import model_fingerprint
from tests.serving.fixtures import draw, make_checkpoint

ort = pytest.importorskip("onnxruntime")

# Every name in BACKBONES is tested as it is; Hugging Face families (hf:<dir>) by the test below
# with tiny random models; other families registered later join here as (name, build_model options).
EXTRA_FAMILIES: list[tuple[str, dict]] = []
FAMILIES = [(name, {}) for name in sorted(BACKBONES)] + EXTRA_FAMILIES


def family(name: str) -> str:
    """efficientnet_lite0/1/2 are one family (one graph, other widths and depths)."""
    return re.sub(r"\d+$", "", name)


def by_family(cases):
    """The first member of each family in the default suite, its siblings under `slow`."""
    seen = set()
    params = []
    for name, options in cases:
        marks = [pytest.mark.slow] if family(name) in seen else []
        seen.add(family(name))
        params.append(pytest.param(name, options, marks=marks, id=name))
    return params


def real_images():
    """A photograph (matplotlib's sample of Grace Hopper) and drawn images of several sizes."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as photo:
        images = [photo.convert("RGB")]
    return images + [draw(c, v, size) for c, v, size in ((0, 1, 40), (4, 2, 150), (2, 0, 300))]


def small(name: str, options: dict) -> dict:
    """The family at a small image size (96 px at most): the same graph, a few seconds to trace and run."""
    return {"image_size": min(96, BACKBONES[name].default_image_size) if name in BACKBONES else None, **options}


@pytest.mark.heavy  # traces and runs a whole backbone per family: seconds each
@pytest.mark.parametrize(("backbone", "options"), by_family(FAMILIES))
def test_onnx_matches_pytorch_on_real_images(backbone, options, tmp_path):
    check_parity(backbone, small(backbone, options), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("backbone", "options"), FAMILIES, ids=[name for name, _ in FAMILIES])
def test_onnx_matches_pytorch_at_the_native_image_size(backbone, options, tmp_path):
    check_parity(backbone, options, tmp_path)


def check_parity(backbone, options, tmp_path):
    """Max abs difference <= 1e-4 for the embedding and every level, at two batch sizes."""
    torch.manual_seed(0)
    model = build_model(backbone, embedding_dim=32, pretrained=False, **options).eval()
    info = export_onnx(model, tmp_path / "m.onnx")
    transform = model.preprocessing.transform(train=False)
    batch = torch.stack([transform(image) for image in real_images()])
    with torch.no_grad():
        outputs = model(batch)
    expected = {"embedding": evaluation_embedding(outputs), **outputs}
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == ["embedding", *model.levels] and info.levels == tuple(model.levels)
    for size in (len(batch), 1):  # the batch size is dynamic
        got = dict(zip(names, session.run(None, {"images": batch[:size].numpy()})))
        for name in names:
            assert np.abs(got[name] - expected[name][:size].numpy()).max() <= 1e-4, name
    assert info.dim == expected["embedding"].shape[1]


def hf_families():
    try:
        from tests.models.hf_fixtures import FAMILIES as HF
    except pytest.skip.Exception:  # transformers is not installed
        return []
    return HF


@pytest.mark.heavy  # traces and runs a whole backbone per family: seconds each
@pytest.mark.parametrize("hf_family", hf_families())
def test_onnx_matches_pytorch_for_hugging_face_families(hf_family, tmp_path):
    """hf:<dir> backbones, one tiny random model per family (tests/models/hf_fixtures.py)."""
    from tests.models.hf_fixtures import SIZES, save_tiny

    folder = save_tiny(hf_family, tmp_path / hf_family)
    check_parity(f"hf:{folder}", {"image_size": SIZES[hf_family]}, tmp_path)


@pytest.mark.parametrize("size", [(7, 5), (16, 16), (3, 9)])
def test_antialiased_bicubic_resize_matches_pytorch(size, tmp_path):
    """The symbolic that exports aten::_upsample_bicubic2d_aa (down, up and mixed resizes)."""
    from ranklist.export.onnx_model import _bicubic_antialiased

    class Resize(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)

    torch.onnx.register_custom_op_symbolic("aten::_upsample_bicubic2d_aa", _bicubic_antialiased, 18)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Resize(), (x,), str(tmp_path / "r.onnx"), dynamo=False, opset_version=18)
    session = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - Resize()(x).numpy()).max() <= 1e-5


def test_metadata_holds_the_preprocessing_record_and_fingerprint(tmp_path):
    import onnx

    from ranklist.data.preprocessing import Preprocessing

    model = build_model("small_cnn", embedding_dim=8, pretrained=False, image_size=40)
    model.preprocessing = Preprocessing.create(40, model.normalization, resize=48, recipe="resize")
    export_onnx(model, tmp_path / "m.onnx")
    info = read_onnx_info(tmp_path / "m.onnx")
    assert info.preprocessing == model.preprocessing and info.fingerprint == model_fingerprint(model)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["preprocessing"]) == model.preprocessing.to_dict()  # readable without ranklist
    assert [p.name for p in (tmp_path).iterdir()] == ["m.onnx"]  # written atomically, no leftovers


def test_export_command_and_errors(tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path / "m.pt")
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "outputs embedding [B, 24]" in capsys.readouterr().out
    assert read_onnx_info(tmp_path / "m.onnx").fingerprint == model_fingerprint(load_model(checkpoint))
    (tmp_path / "foreign.onnx").write_bytes(b"not a model")
    cases = [
        (["export", str(checkpoint), "--out", str(tmp_path / "m.txt")], "must end in .onnx"),
        (["export", str(tmp_path / "none.pt"), "--out", str(tmp_path / "n.onnx")], "checkpoint not found"),
    ]
    for argv, message in cases:
        assert main(argv) == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="cannot read ONNX model"):
        read_onnx_info(tmp_path / "foreign.onnx")


def test_a_missing_extra_is_named(monkeypatch):
    import builtins

    from ranklist.errors import MissingExtraError, require

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "onnx", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(
        MissingExtraError, match=r"ONNX export needs the optional extra: pip install 'ranklist\[serve\]'"
    ):
        require("onnx", "ONNX export")
