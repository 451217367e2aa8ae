"""Listings a careless user makes: an image listed twice (it would find itself: Recall@1 of 100 %), a split
added twice to an index, a CSV saved by a spreadsheet program (byte-order mark)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ranklist.data import build_dataset
from ranklist.retrieval import Items, add_to_index, build_index


def _images(folder, n=8):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.new("RGB", (8, 8), (30 * k, 0, 0)).save(folder / f"{k}.png")


def test_an_image_listed_twice_in_a_split_is_refused_with_its_rows(tmp_path):
    _images(tmp_path)
    rows = (
        [f"{k}.png,{k // 2},test" for k in range(8)]
        + [f"{k}.png,{k // 2},train" for k in range(4)]
        + ["./3.png,1,test"]
    )
    (tmp_path / "list.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"image './3.png' is listed twice in split 'test' \(data rows 4 and 13\)"):
        build_dataset("csv", "test", root=tmp_path / "list.csv")


def test_an_image_in_two_splits_is_warned_about(tmp_path, capsys):
    _images(tmp_path)
    rows = (
        [f"{k}.png,{k // 2},{'query' if k % 2 else 'gallery'}" for k in range(8)]
        + ["1.png,0,gallery"]
        + [f"{k}.png,{k + 10},train" for k in range(2)]
    )
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    assert len(build_dataset("csv", "gallery", root=tmp_path / "list.csv")) == 5
    assert "2 images are listed in more than one split (e.g. '0.png'" in capsys.readouterr().err


def test_a_listing_without_splits_refuses_any_repeat(tmp_path):
    _images(tmp_path)
    (tmp_path / "list.csv").write_text("".join(f"{k % 7}.png,{k % 7 // 2}\n" for k in range(8)))
    with pytest.raises(ValueError, match=r"image '0.png' is listed twice \(data rows 1 and 8\)"):
        build_dataset("csv", "test", root=tmp_path / "list.csv")


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path):
    _images(tmp_path)
    rows = ["path,label,split"] + [f"{k}.png,{k // 2},{'test' if k < 4 else 'train'}" for k in range(8)]
    (tmp_path / "list.csv").write_bytes("\ufeff".encode() + "\r\n".join(rows).encode())
    assert len(build_dataset("csv", "test", root=tmp_path / "list.csv")) == 4


def test_adding_the_same_images_again_is_refused():
    x = np.random.default_rng(0).normal(size=(6, 4))
    paths = np.array([f"/data/{k}.png" for k in range(6)])
    index = build_index(x[:4], Items(np.arange(4), paths=paths[:4]))
    with pytest.raises(ValueError, match=r"2 of the 3 added images are already in the index \(e.g. /data/2.png\)"):
        add_to_index(index, x[2:5], Items(np.arange(4, 7), paths=paths[2:5]))
    with pytest.raises(ValueError, match="1 image paths are listed more than once"):
        Items(np.arange(3), paths=np.array(["a.png", "b.png", "a.png"]))
    assert len(add_to_index(index, x[4:], Items(np.arange(4, 6), paths=paths[4:]))) == 6
