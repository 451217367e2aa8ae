"""train.cache_frozen: the frozen trunk's output cached once stands for the images it came from."""

import numpy as np
import pytest
import torch

from ranklist.data import ArrayDataset, Preprocessing
from ranklist.models import build_model
from ranklist.training.config import ConfigError, load_config
from ranklist.training.trunk_cache import CachedTrunkSet, cache_trunk


def _images(n: int = 6, side: int = 24) -> ArrayDataset:
    pixels = np.random.default_rng(0).integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    return ArrayDataset(pixels, np.arange(n) % 3, ["a", "b", "c"])


def _model(size: int, freeze: int = 3):
    torch.manual_seed(0)
    return build_model(
        "efficientnet_lite0", pretrained=True, embedding_dim=8, image_size=size, freeze_blocks=freeze
    ).train()


def test_without_a_crop_the_cached_step_is_the_image_step():
    """Recipe "resize" crops nothing: embeddings and gradients from the cached maps equal those from the images."""
    model, record = _model(32), Preprocessing.create(32, "efficientnet_lite", recipe="resize", hflip=False)
    data = _images()
    data.transform = record.transform(train=True)
    cached = cache_trunk(model, data, record, flips=False, batch_size=4)
    assert isinstance(cached, CachedTrunkSet) and len(cached) == 6 and cached.labels.tolist() == data.labels.tolist()
    runs = []
    for batch, from_trunk in (
        (torch.stack([data[i][0] for i in range(6)]), False),
        (torch.stack([cached[i][0] for i in range(6)]), True),
    ):
        model.zero_grad()
        torch.manual_seed(1)  # the same stochastic-depth draws
        outputs = model(batch, from_trunk=from_trunk)
        sum(o.square().sum() for o in outputs.values()).backward()
        runs.append((outputs, model.backbone.blocks[3]._depthwise_conv.weight.grad.clone()))
    for level in ("L", "M", "H"):
        torch.testing.assert_close(runs[1][0][level], runs[0][0][level], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(runs[1][1], runs[0][1], rtol=1e-4, atol=1e-5)


def test_a_crop_of_the_cached_map_is_the_trunk_on_the_pixel_crop_inside_its_border():
    """Paper recipe, 40 px resized, 32 px crops: the trunk (stride 4) gives 10 x 10 maps and 8 x 8
    crops. The crop at map offset (a, b) is the trunk's output on the pixel crop at (4a, 4b) except
    in its outer cells (2 before, 3 after: the padded 3 x 3 convolutions of the stem and blocks 0 to
    2), where the trunk saw neighbouring pixels instead of padding."""
    model, record = _model(32), Preprocessing.create(32, "efficientnet_lite", resize=40, hflip=False)
    data = _images(side=40)
    cached = cache_trunk(model, data, record, flips=False, batch_size=8)
    assert cached.maps.shape[-2:] == (10, 10) and cached.side == 8
    full = torch.stack([record.uncropped_transform()(data.images[i]) for i in range(6)])
    for a, b in ((0, 0), (1, 2), (2, 2)):
        with torch.no_grad():
            direct = model.backbone.frozen_trunk(full[:, :, 4 * a : 4 * a + 32, 4 * b : 4 * b + 32])
        crop = cached.maps[:, :, a : a + 8, b : b + 8]
        torch.testing.assert_close(crop[..., 2:-3, 2:-3], direct[..., 2:-3, 2:-3], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(
            crop[..., -1, :], direct[..., -1, :], atol=1e-3
        )  # the border differs: the test can tell


def test_flipped_maps_are_the_trunk_on_the_mirror_image():
    model, record = _model(32), Preprocessing.create(32, "efficientnet_lite", recipe="resize")
    data = _images()
    cached = cache_trunk(model, data, record, flips=True, batch_size=4)
    images = torch.stack([record.uncropped_transform()(data.images[i]) for i in range(6)])
    with torch.no_grad():
        torch.testing.assert_close(cached.flipped, model.backbone.frozen_trunk(images.flip(-1)), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(cached.flipped, cached.maps)


def test_items_draw_every_crop_offset_and_both_orientations():
    maps = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    data = CachedTrunkSet(maps, -maps, np.array([4, 7]), side=3)
    torch.manual_seed(0)
    seen, flips = set(), set()
    for _ in range(400):
        crop, label = data[1]
        assert label == 7 and crop.shape == (1, 3, 3)
        flips.add(bool(crop[0, 0, 0] < 0))
        corner = int(crop.abs()[0, 0, 0]) - 25
        seen.add(divmod(corner, 5))
    assert seen == {(top, left) for top in range(3) for left in range(3)} and flips == {True, False}
    unflipped = CachedTrunkSet(maps, None, np.array([4, 7]), side=5)
    assert torch.equal(unflipped[0][0], maps[0])


def test_what_cannot_be_cached_is_refused_by_name(tiny_recipe):
    with pytest.raises(ConfigError, match="train.cache_frozen needs frozen blocks .*model.freeze_blocks=0"):
        load_config(tiny_recipe, ["train.cache_frozen=true"])
    with pytest.raises(ConfigError, match="train.cache_frozen cannot cache data.recipe='rrc'"):
        load_config(tiny_recipe, ["train.cache_frozen=true", "model.freeze_blocks=2", "data.recipe=rrc"])
    with pytest.raises(ValueError, match=r"cannot be cached with 5 frozen blocks.*taps: \{'L': 4\}"):
        _model(32, freeze=5).backbone.frozen_trunk(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="rrc"):
        Preprocessing.create(32, "none", recipe="rrc").uncropped_transform()
    with pytest.raises(ValueError, match="crop side 6 does not fit maps of"):
        CachedTrunkSet(torch.zeros(1, 1, 5, 5), None, np.array([0]), side=6)


def test_a_cached_run_trains_and_resumes_bit_for_bit(tiny_recipe, tmp_path):
    """The crops draw from the generator that checkpoints keep: a resumed cached run is exact."""
    from ranklist.training import Trainer

    cached = [
        "model.backbone=efficientnet_lite0",
        "model.pretrained=false",
        "data.image_size=32",
        "data.resize=40",
        "model.freeze_blocks=2",
        "train.cache_frozen=true",
    ]
    quiet = dict(progress=False, log=lambda m: None)
    from ranklist.training import build_run

    run = build_run(
        load_config(tiny_recipe, [*cached, "model.freeze_bn=true"])
    )  # caching leaves the model's modes as they were
    assert run.trunk_cached and run.model.training
    assert not any(m.training for m in run.model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    straight = Trainer(load_config(tiny_recipe, cached), tmp_path / "straight", **quiet).run()
    assert (
        straight["iterations"] == 6
        and set(straight["test"]) == {"L", "M", "H", "concat"}
        and straight["trunk_cache_mib"] > 0
    )
    Trainer(load_config(tiny_recipe, [*cached, "train.iterations=3"]), tmp_path / "split", **quiet).run()
    Trainer(load_config(tiny_recipe, cached), tmp_path / "split", **quiet).run(resume=True)
    ends = [
        torch.load(tmp_path / run / "checkpoints/last.pt", weights_only=False)["model_state"]
        for run in ("straight", "split")
    ]
    assert all(torch.equal(value, ends[1][key]) for key, value in ends[0].items())
