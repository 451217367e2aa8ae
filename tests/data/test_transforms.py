import numpy as np
import pytest
import torch
from PIL import Image

from ranklist.data import build_transform
from ranklist.data.transforms import Normalize


def gradient_image(h=40, w=50):
    x = np.zeros((h, w, 3), dtype=np.uint8)
    x[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    x[..., 1] = 128
    return x


def test_paper_recipe_shapes_and_centre_crop_is_deterministic():
    image = Image.fromarray(gradient_image())
    test = build_transform(False, image_size=227, normalization="none")
    out = test(image)
    assert out.shape == (3, 227, 227) and torch.equal(out, test(image))
    train = build_transform(True, image_size=227, generator=torch.Generator().manual_seed(0))
    assert train(image).shape == (3, 227, 227)


def test_tensor_and_pil_inputs_agree():
    array = gradient_image()
    t = build_transform(False, image_size=32, resize=36)
    torch.testing.assert_close(t(Image.fromarray(array)), t(torch.from_numpy(array).permute(2, 0, 1).contiguous()))


def test_training_crops_and_flips_are_seeded():
    image = torch.from_numpy(gradient_image()).permute(2, 0, 1).contiguous()
    outs = [build_transform(True, image_size=24, resize=32, generator=torch.Generator().manual_seed(s))(image) for s in (1, 1, 2)]
    assert torch.equal(outs[0], outs[1])
    flipped = [build_transform(True, image_size=32, resize=32, recipe="paper", generator=torch.Generator().manual_seed(s))(image)
               for s in range(8)]
    red_rising = [bool(x[0, 0, -1] > x[0, 0, 0]) for x in flipped]
    assert any(red_rising) and not all(red_rising)  # some flipped, some not


def test_random_resized_crop_recipe():
    image = torch.from_numpy(gradient_image(64, 64)).permute(2, 0, 1).contiguous()
    t = build_transform(True, image_size=48, recipe="rrc", generator=torch.Generator().manual_seed(0))
    assert t(image).shape == (3, 48, 48)


def test_normalisations():
    white = torch.ones(3, 2, 2)
    torch.testing.assert_close(Normalize("efficientnet_lite")(white), torch.full((3, 2, 2), 1.0))  # (255-127)/128
    bgr = Normalize("bn_inception")(torch.stack([torch.full((2, 2), v) for v in (1.0, 0.5, 0.0)]))
    torch.testing.assert_close(bgr[:, 0, 0], torch.tensor([0.0 - 104.0, 127.5 - 117.0, 255.0 - 128.0]))
    with pytest.raises(ValueError, match="unknown normalization 'caffe'"):
        Normalize("caffe")
    with pytest.raises(ValueError, match="need 1 <= image_size <= resize, got image_size=64, resize=32"):
        build_transform(True, image_size=64, resize=32)


def test_flips_can_be_turned_off():
    image = torch.from_numpy(gradient_image()).permute(2, 0, 1).contiguous()
    outs = [build_transform(True, image_size=32, resize=32, hflip=False, generator=torch.Generator().manual_seed(s))(image)
            for s in range(8)]
    assert all(bool(x[0, 0, -1] > x[0, 0, 0]) for x in outs)
