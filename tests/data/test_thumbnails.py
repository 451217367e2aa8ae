"""The one thumbnail maker (index, run report, server)."""

import torch

from ranklist.data.thumbnails import thumbnail


def test_thumbnail_letterboxes_on_white():
    from PIL import Image

    thumb = thumbnail(Image.new("RGB", (200, 100), (255, 0, 0)), 64)
    assert (
        thumb.shape == (64, 64, 3)
        and thumb[32, 32].tolist() == [255, 0, 0]
        and thumb[0, 32].tolist() == [255, 255, 255]
    )
    small = thumbnail(torch.zeros(3, 28, 28, dtype=torch.uint8), 64)
    assert small.shape == (64, 64, 3) and small[32, 32].tolist() == [0, 0, 0]
