import json

import numpy as np
import pytest

from ranklist.data import build_dataset
from ranklist.data.emoji import STYLES, build_emoji, emoji_key, ensure_emoji, load_emoji
from tests.data.fixtures import make_emoji_packages


def test_join_key_normalises_case_and_variation_selector():
    assert emoji_key("2764-fe0f") == "2764" and emoji_key("1f468-200D-2708-FE0F") == "1F468-200D-2708"


def test_build_joins_styles_renders_and_caches(tmp_path):
    expected = make_emoji_packages(tmp_path / "cache" / "downloads")
    build_emoji(tmp_path / "cache")
    data = load_emoji(tmp_path / "cache")
    assert [c for c in data.class_codes] == expected  # skin tone and the OpenMoji-less emoji left out
    assert data.images.shape == (len(expected) * len(STYLES), 64, 64, 3) and data.images.dtype == np.uint8
    assert list(data.styles[:4]) == [0, 1, 2, 3] and list(data.labels[:8]) == [0] * 4 + [1] * 4
    twitter = data.images[1]  # half-transparent blue composited on white
    assert twitter[0, 0, 0] > 100 and twitter[0, 0, 2] > 200
    fluent = data.images[3]  # the rect covers the top half; the rest is white
    assert tuple(fluent[5, 5]) != (255, 255, 255) and tuple(fluent[60, 5]) == (255, 255, 255)


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path):
    make_emoji_packages(tmp_path / "cache" / "downloads")
    folder = build_emoji(tmp_path / "cache")
    good = np.load(folder / "images.npy")
    raw = bytearray((folder / "images.npy").read_bytes())
    raw[-10] ^= 0xFF
    (folder / "images.npy").write_bytes(bytes(raw))
    ensure_emoji(folder)  # checksum fails -> rebuilt from the downloaded packages
    assert np.array_equal(np.load(folder / "images.npy"), good)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["shape"] == list(good.shape)


def test_truncated_download_is_fetched_again(tmp_path, monkeypatch):
    downloads = tmp_path / "cache" / "downloads"
    make_emoji_packages(downloads)
    tarball = downloads / "openmoji-17.0.0.tgz"
    tarball.write_bytes(tarball.read_bytes()[:100])
    calls = []

    def fake_run(cmd, cwd, **kwargs):
        calls.append(cmd)
        make_emoji_packages(tmp_path / "again")
        (tmp_path / "again" / "openmoji-17.0.0.tgz").rename(f"{cwd}/openmoji-17.0.0.tgz")

        class Done:
            returncode, stderr = 0, ""
        return Done()

    monkeypatch.setattr("ranklist.data.emoji.subprocess.run", fake_run)
    build_emoji(tmp_path / "cache")
    assert calls == [["npm", "pack", "openmoji@17.0.0", "--silent"]]


def test_emoji_dataset_splits_are_class_disjoint(tmp_path):
    make_emoji_packages(tmp_path / "cache" / "downloads")
    build_emoji(tmp_path / "cache")
    parts = {s: build_dataset("emoji", s, root=tmp_path / "cache", val_fraction=0.5) for s in ("train", "val", "trainval", "test")}
    names = {s: set(d.class_names) for s, d in parts.items()}
    assert not names["trainval"] & names["test"] and names["train"] | names["val"] == names["trainval"]
    assert len(parts["trainval"]) + len(parts["test"]) == 20
    image, label = parts["test"][0]
    assert image.shape == (3, 64, 64) and 0 <= float(image.min()) and float(image.max()) <= 1


@pytest.mark.slow
@pytest.mark.network
def test_real_benchmark_fetch(tmp_path):
    data = load_emoji(ensure_emoji(tmp_path / "emoji"))
    assert len(data.class_names) == 1594 and len(data.images) == 6376
