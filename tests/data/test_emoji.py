import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ranklist.data import build_dataset
from ranklist.data.emoji import (
    STYLES,
    build_emoji,
    cache_problem,
    emoji_key,
    ensure_emoji,
    load_emoji,
    main,
)
from tests.data.fixtures import make_emoji_packages


@pytest.fixture
def packages(tmp_path):
    """The four fake npm tarballs, in a folder of their own (as an already-downloaded copy)."""
    expected = make_emoji_packages(tmp_path / "packages")
    return tmp_path / "packages", expected


@pytest.fixture
def no_npm(monkeypatch):
    monkeypatch.setattr("ranklist.data.emoji.subprocess.run", lambda *a, **k: pytest.fail("npm was called"))


def test_join_key_normalises_case_and_variation_selector():
    assert emoji_key("2764-fe0f") == "2764" and emoji_key("1f468-200D-2708-FE0F") == "1F468-200D-2708"
    assert emoji_key("1f1e8_1f1f1") == "1F1E8-1F1F1"


def test_build_joins_styles_renders_and_caches(tmp_path, packages, no_npm):
    folder, expected = packages
    data = load_emoji(tmp_path / "cache", packages_dir=folder)
    assert data.class_codes == expected  # the skin tone and the emoji OpenMoji lacks are left out
    assert data.class_names[0] == "emoji 1f1e8-1f1f1"
    assert data.images.shape == (len(expected) * len(STYLES), 64, 64, 3) and data.images.dtype == np.uint8
    assert list(data.styles[:4]) == [0, 1, 2, 3] and list(data.labels[:8]) == [0] * 4 + [1] * 4
    google, twitter, openmoji, fluent = data.images[8:12]  # 1F600, drawn in the fixture's first colours
    assert tuple(google[0, 0]) == (200, 0, 0)  # opaque: unchanged
    assert tuple(twitter[0, 0]) == (127, 127, 227)  # alpha 128 blue over white
    assert tuple(openmoji[0, 0]) == (255, 255, 255) and openmoji[32, 32, 2] < 50  # a yellow disc on white
    assert tuple(fluent[5, 5]) == (51, 102, 204) and tuple(fluent[60, 5]) == (255, 255, 255)  # top-half rect
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["num_classes"] == len(expected) and manifest["num_images"] == 4 * len(expected)
    assert manifest["left_out"] == {
        "catalogue_entries": 10,
        "skin_tone_entries": 1,
        "not_drawn_by_google": 0,
        "not_drawn_by_twitter": 0,
        "not_drawn_by_openmoji": 1,
        "not_drawn_by_fluent": 0,
    }
    assert "CC-BY-4.0" in manifest["attribution"]


def test_a_valid_cache_is_loaded_without_rebuilding(tmp_path, packages, monkeypatch):
    build_emoji(tmp_path / "cache", packages_dir=packages[0])
    monkeypatch.setattr("ranklist.data.emoji.build_emoji", lambda *a, **k: pytest.fail("rebuilt a valid cache"))
    assert len(load_emoji(tmp_path / "cache").images) == 32


def test_corrupt_or_interrupted_cache_is_detected_and_rebuilt(tmp_path, packages, no_npm):
    folder = build_emoji(tmp_path / "cache", packages_dir=packages[0])
    good = np.load(folder / "images.npy")
    raw = bytearray((folder / "images.npy").read_bytes())
    raw[-10] ^= 0xFF
    (folder / "images.npy").write_bytes(bytes(raw))
    assert cache_problem(folder) == "images.npy does not match its checksum"
    ensure_emoji(folder, packages_dir=packages[0])
    assert cache_problem(folder) is None and np.array_equal(np.load(folder / "images.npy"), good)
    (folder / "manifest.json").unlink()  # as left by a build interrupted before its last write
    assert "no manifest.json" in cache_problem(folder)
    (folder / "manifest.json").write_text("{trunc")
    assert "unreadable manifest.json" in cache_problem(folder)
    ensure_emoji(folder, packages_dir=packages[0])
    assert cache_problem(folder) is None


def fake_npm(monkeypatch, packed: bytes, returncode: int = 0, stderr: str = "") -> list[list[str]]:
    """Stand-in for `npm pack`: writes `packed` as the tarball into npm's working folder."""
    calls = []

    def run(cmd, cwd, **kwargs):
        calls.append(cmd)
        (Path(cwd) / "openmoji-17.0.0.tgz").write_bytes(packed)
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    monkeypatch.setattr("ranklist.data.emoji.shutil.which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr("ranklist.data.emoji.subprocess.run", run)
    return calls


def test_truncated_download_is_fetched_again(tmp_path, packages, monkeypatch):
    tarball = packages[0] / "openmoji-17.0.0.tgz"
    good = tarball.read_bytes()
    tarball.write_bytes(good[:100])  # an interrupted download
    calls = fake_npm(monkeypatch, good)
    build_emoji(tmp_path / "cache", packages_dir=packages[0])
    assert calls == [["npm", "pack", "openmoji@17.0.0", "--silent"]] and tarball.read_bytes() == good


def test_failed_npm_leaves_no_tarball(tmp_path, packages, monkeypatch):
    tarball = packages[0] / "openmoji-17.0.0.tgz"
    tarball.unlink()
    fake_npm(monkeypatch, b"\x1f\x8b partial", returncode=1, stderr="npm ERR! network")
    with pytest.raises(RuntimeError, match="npm pack openmoji@17.0.0 failed .*npm ERR! network"):
        build_emoji(tmp_path / "cache", packages_dir=packages[0])
    assert not tarball.exists() and not (tmp_path / "cache" / "manifest.json").exists()


def test_emoji_dataset_splits_are_class_disjoint(tmp_path, packages, no_npm):
    ensure_emoji(tmp_path / "cache", packages_dir=packages[0])
    parts = {
        s: build_dataset("emoji", s, root=tmp_path / "cache", val_fraction=0.5)
        for s in ("train", "val", "trainval", "test")
    }
    codes = {s: set(d.class_ids) for s, d in parts.items()}
    assert not codes["trainval"] & codes["test"] and not codes["train"] & codes["val"]
    assert codes["train"] | codes["val"] == codes["trainval"] and len(codes["test"]) == 4
    assert len(parts["trainval"]) + len(parts["test"]) == 32
    seeded = build_dataset("emoji", "test", root=tmp_path / "cache", seed=5)
    assert set(seeded.class_ids) == codes["test"]  # the benchmark's test half is fixed
    image, _ = parts["test"][0]
    assert image.shape == (3, 64, 64) and 0 <= float(image.min()) and float(image.max()) <= 1
    assert np.array_equal(np.unique(parts["test"].labels), np.arange(4))


def test_entry_point_prints_counts(tmp_path, packages, no_npm, capsys):
    assert main(["--cache", str(tmp_path / "cache"), "--packages", str(packages[0])]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["classes"] == 8 and printed["images"] == 32
    assert printed["classes_per_split"] == {"train": 2, "val": 2, "trainval": 4, "test": 4}


@pytest.mark.slow
@pytest.mark.network
def test_real_benchmark_fetch(tmp_path):
    data = load_emoji(tmp_path / "emoji")
    assert len(data.class_names) == 1594 and len(data.images) == 6376
    assert len(build_dataset("emoji", "test", root=tmp_path / "emoji").class_names) == 797
