import numpy as np
import pytest
import torch
from PIL import Image

from ranklist.data import build_transform
from ranklist.data.transforms import Normalize


def gradient_image(h=40, w=50):
    """Red rises left to right, green is constant, blue falls top to bottom."""
    x = np.zeros((h, w, 3), dtype=np.uint8)
    x[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    x[..., 1] = 128
    x[..., 2] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
    return x


def as_tensor(array):
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_paper_recipe_shapes_and_centre_crop():
    image = Image.fromarray(gradient_image())
    test = build_transform(False, image_size=227, normalization="none")
    out = test(image)
    assert out.shape == (3, 227, 227) and out.dtype == torch.float32 and torch.equal(out, test(image))
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    train = build_transform(True, image_size=227, generator=seeded(0))
    assert train(image).shape == (3, 227, 227)
    # centre crop of the 256 x 256 resize, against a float64 reference of the same resize
    ref = torch.nn.functional.interpolate(
        as_tensor(gradient_image())[None].double() / 255,
        size=(256, 256),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0]
    torch.testing.assert_close(out.double(), ref[:, 14:241, 14:241], atol=1e-5, rtol=0)


def test_tensor_and_pil_inputs_agree():
    array = gradient_image()
    for recipe in ("paper", "rrc", "resize"):
        t = build_transform(False, image_size=32, resize=36, recipe=recipe)
        torch.testing.assert_close(t(Image.fromarray(array)), t(as_tensor(array)))
    grey = Image.fromarray(array[..., 0])  # any PIL mode becomes RGB
    assert build_transform(False, image_size=32)(grey).shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"uint8 \[3, H, W\], got torch.float32"):
        build_transform(False, image_size=32)(torch.zeros(3, 8, 8))


def test_training_crops_and_flips_are_seeded():
    image = as_tensor(gradient_image())
    outs = [build_transform(True, image_size=24, resize=32, generator=seeded(s))(image) for s in (1, 1, 2)]
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    torch.manual_seed(5)
    default_rng = build_transform(True, image_size=24, resize=32)
    first = default_rng(image)
    torch.manual_seed(5)
    assert torch.equal(default_rng(image), first)  # without a generator: torch's seeded default one


def test_flips_mirror_and_can_be_turned_off():
    image = as_tensor(gradient_image())
    outs = [build_transform(True, image_size=32, resize=32, generator=seeded(s))(image) for s in range(16)]
    plain = build_transform(False, image_size=32, resize=32)(image)
    flipped = [bool(x[0, 0, -1] < x[0, 0, 0]) for x in outs]  # red falls left to right
    assert any(flipped) and not all(flipped)
    for x, f in zip(outs, flipped):
        torch.testing.assert_close(x, plain.flip(-1) if f else plain)  # crop of a 32 x 32 resize = the image
    kept = [build_transform(True, image_size=32, resize=32, hflip=False, generator=seeded(s))(image) for s in range(8)]
    assert all(torch.equal(x, plain) for x in kept)


def test_random_crops_are_windows_of_the_resized_image():
    image = as_tensor(gradient_image())
    resized = build_transform(False, image_size=32, resize=32, recipe="resize")(image)
    crops = [build_transform(True, image_size=24, resize=32, hflip=False, generator=seeded(s))(image) for s in range(6)]
    offsets = set()
    for crop in crops:
        found = [(t, l) for t in range(9) for l in range(9) if torch.equal(resized[:, t : t + 24, l : l + 24], crop)]
        assert found
        offsets.add(found[0])
    assert len(offsets) > 1


def test_random_resized_crop_recipe():
    image = as_tensor(gradient_image(64, 80))
    t = build_transform(True, image_size=48, recipe="rrc", generator=seeded(0))
    outs = [t(image) for _ in range(5)]
    assert all(x.shape == (3, 48, 48) for x in outs) and not torch.equal(outs[0], outs[1])
    test = build_transform(False, image_size=48, resize=56, recipe="rrc")(image)
    assert test.shape == (3, 48, 48)
    # aspect ratio kept: the shorter side 64 -> 56, width 80 -> 70; the centre column is the image's
    torch.testing.assert_close(test[0, 0, 24], torch.tensor(128 / 255), atol=0.02, rtol=0)
    with pytest.raises(ValueError, match=r"rrc_scale must satisfy 0 < low <= high <= 1, got \(0.5, 0.2\)"):
        build_transform(True, image_size=48, recipe="rrc", rrc_scale=(0.5, 0.2))


def test_normalisations_against_their_formulas():
    rgb = torch.rand(3, 4, 4, generator=seeded(0))
    torch.testing.assert_close(Normalize("none")(rgb), rgb)
    torch.testing.assert_close(Normalize("efficientnet_lite")(rgb), (rgb * 255 - 127) / 128)
    bgr = Normalize("bn_inception")(rgb)
    for out_channel, in_channel, mean in ((0, 2, 104.0), (1, 1, 117.0), (2, 0, 128.0)):  # B, G, R
        torch.testing.assert_close(bgr[out_channel], rgb[in_channel] * 255 - mean)
    imagenet = Normalize("imagenet")(rgb)
    torch.testing.assert_close(imagenet[0], (rgb[0] - 0.485) / 0.229)
    assert (
        build_transform(False, image_size=8, normalization="efficientnet_lite")(
            torch.full((3, 8, 8), 255, dtype=torch.uint8)
        )
        .eq(1)
        .all()
    )
    with pytest.raises(ValueError, match="unknown normalization 'caffe'"):
        Normalize("caffe")
    with pytest.raises(ValueError, match="need 1 <= image_size <= resize, got image_size=64, resize=32"):
        build_transform(True, image_size=64, resize=32)
    with pytest.raises(ValueError, match="unknown transform recipe 'autoaugment'"):
        build_transform(True, image_size=64, recipe="autoaugment")
