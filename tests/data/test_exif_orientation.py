"""Phone photos are stored sideways with an EXIF orientation: new records turn them upright, records
made before the option keep reading the stored pixels (and keep their fingerprints)."""

import numpy as np
import pytest
from PIL import Image

from ranklist.data.image_decoding import ORIENTATION, read_rgb, upright
from ranklist.data.preprocessing import Preprocessing


def sideways_photo(path, orientation=6):
    """A 40 x 20 image stored with its top half red, tagged so that a viewer shows it turned."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:10, :] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_orientation_is_read_and_applied_by_the_record(tmp_path, suffix):
    image = read_rgb(sideways_photo(tmp_path / f"photo{suffix}"))
    assert image.size == (40, 20) and image.info[ORIENTATION] == 6
    assert upright(image).size == (20, 40)
    record = Preprocessing.create(16, "none", recipe="resize")
    turned, stored = (
        record.transform(train=False)(image),
        Preprocessing.from_dict({**record.to_dict(), "exif_orientation": False}).transform(train=False)(image),
    )
    # orientation 6 (turn 90 degrees clockwise): the stored top half is the right half once upright
    assert turned[0, :, 12:].mean() > 0.9 and turned[0, :, :4].mean() < 0.1
    assert stored[0, :4, :].mean() > 0.9 and stored[0, 12:, :].mean() < 0.1


def test_old_records_read_as_off_and_keep_their_dictionaries():
    record = Preprocessing.create(16, "none")
    assert record.exif_orientation and record.to_dict()["exif_orientation"] is True
    old = {key: value for key, value in record.to_dict().items() if key != "exif_orientation"}
    assert not Preprocessing.from_dict(old).exif_orientation
    assert Preprocessing.from_dict(old).to_dict() == old  # the fingerprint of an existing model is unchanged


def test_unoriented_and_damaged_tags_leave_pixels_alone(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 4)).save(plain)
    assert read_rgb(plain).info[ORIENTATION] == 1 and upright(read_rgb(plain)).size == (8, 4)
    assert read_rgb(sideways_photo(tmp_path / "odd.jpg", orientation=42)).info[ORIENTATION] == 1
