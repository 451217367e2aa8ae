"""`ranklist data fetch` against a local HTTP server serving fixture archives in the official layouts:
resumed transfers, checksums, malicious members, counts, manual drop-ins, the mirror."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from ranklist.cli import main
from ranklist.data import benchmarks
from ranklist.data.download import MIRROR_ENV, ChecksumError, DownloadError, archive_url, download
from ranklist.data.extract import UnsafeArchiveError, extract
from ranklist.data.fetch import fetch, with_digest
from ranklist.data.sources import SOURCES, Digest
from tests.data.fetch_server import serving
from tests.data.fixtures import make_cub, make_inshop, make_sop, write_image


def _sha(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest(), "the test's fixture")


def _tgz(folder: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """folder packed as <folder name>/... (the official tarball's layout), plus loose top-level files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(folder: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


@pytest.fixture
def cub_tgz(tmp_path):
    return _tgz(
        make_cub(tmp_path / "src" / "CUB_200_2011", per_class=1), {"attributes.txt": b"1 has_bill_shape::curved\n"}
    )


@pytest.fixture
def fixture_counts(monkeypatch):
    """The readers' published counts, for the fixture datasets (the count check itself is the real one)."""
    counts = {
        "cub200": {"trainval": (100, 100), "test": (100, 100)},
        "cars196": {"trainval": (98, 98), "test": (98, 98)},
        "sop": {"trainval": (12, 6), "test": (10, 5)},
        "inshop": {"trainval": (8, 4), "query": (4, None), "gallery": (8, None)},
    }
    for name, value in counts.items():
        monkeypatch.setitem(benchmarks.PUBLISHED, name, value)


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != "downloads") if root.exists() else []


def test_cub_resumes_a_broken_transfer_and_lands_checked(tmp_path, cub_tgz, fixture_counts, monkeypatch):
    sources = with_digest(SOURCES, "cub200", {"CUB_200_2011.tgz": _sha(cub_tgz)})
    with serving({"CUB_200_2011.tgz": cub_tgz}) as server:
        server.break_next.add("CUB_200_2011.tgz")
        monkeypatch.setenv(MIRROR_ENV, server.url + "/")
        said = []
        target = fetch("cub200", tmp_path / "data", sources=sources, log=said.append)
    assert target == tmp_path / "data" / "CUB_200_2011" and (target / "images.txt").is_file()
    half = len(cub_tgz) - len(cub_tgz) // 2  # what the broken transfer left undone
    assert server.requests == [("CUB_200_2011.tgz", None), ("CUB_200_2011.tgz", f"bytes={len(cub_tgz) - half}-")]
    assert any("transfer broke" in line for line in said)
    assert (tmp_path / "data" / "downloads" / "CUB_200_2011.tgz").read_bytes() == cub_tgz
    assert not list((tmp_path / "data" / "downloads").glob("*.part")) and _leftovers(tmp_path / "data") == [
        "CUB_200_2011",
        "CUB_200_2011.fetched.json",
    ]
    record = json.loads((tmp_path / "data" / "CUB_200_2011.fetched.json").read_text())
    assert record["counts"] == {"trainval": 100, "test": 100} and record["archives"][0]["verified"] is True
    assert record["archives"][0]["url"] == f"{server.url}/CUB_200_2011.tgz"
    assert len(benchmarks.read_benchmark("cub200", target, "test")) == 100
    # a second fetch leaves the dataset as it is, asking nothing
    with serving({}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        assert fetch("cub200", tmp_path / "data", sources=sources, log=said.append) == target and server.requests == []


def test_an_interrupted_download_resumes_in_a_later_call(tmp_path):
    data = bytes(range(256)) * 400
    with serving({"f.bin": data}) as server:
        server.break_next.add("f.bin")
        part = tmp_path / "f.bin.part"
        with pytest.raises(DownloadError, match="resumes from there"):
            download(f"{server.url}/f.bin", part, retries=1, log=lambda m: None)
        assert part.read_bytes() == data[: len(data) // 2]
        download(f"{server.url}/f.bin", part, retries=1, log=lambda m: None)
        assert part.read_bytes() == data and server.requests[-1] == ("f.bin", f"bytes={len(data) // 2}-")
        server.ranges = False  # a server without ranges: the part is written again from the start
        part.write_bytes(data[:100])
        download(f"{server.url}/f.bin", part, retries=1, log=lambda m: None)
        assert part.read_bytes() == data


def test_a_tampered_archive_is_refused_naming_its_checksum(tmp_path, cub_tgz, fixture_counts, monkeypatch, capsys):
    tampered = cub_tgz[:-10] + bytes(10)
    with serving({"CUB_200_2011.tgz": tampered}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        # the real registry: the official MD5 is named and the file refused
        assert main(["data", "fetch", "cub200", "--root", str(tmp_path / "data")]) == 2
        error = capsys.readouterr().err
        assert (
            "97eceeb196236b17998738112f37df78" in error and "CUB_200_2011.tgz: md5 is" in error and "removed" in error
        )
        assert _leftovers(tmp_path / "data") == [] and list((tmp_path / "data" / "downloads").iterdir()) == []
        # a truncated copy (complete transfer of a short file) likewise, with a fixture checksum
        server.files["CUB_200_2011.tgz"] = cub_tgz[: len(cub_tgz) // 3]
        with pytest.raises(ChecksumError, match=_sha(cub_tgz).value):
            fetch(
                "cub200",
                tmp_path / "data",
                sources=with_digest(SOURCES, "cub200", {"CUB_200_2011.tgz": _sha(cub_tgz)}),
                log=lambda m: None,
            )
    assert _leftovers(tmp_path / "data") == []


def _evil_tar(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        good = tarfile.TarInfo("CUB_200_2011/images.txt")
        good.size = 3
        archive.addfile(good, io.BytesIO(b"1 a"))
        info = tarfile.TarInfo(
            {
                "dotdot": "CUB_200_2011/../../evil",
                "absolute": "/tmp/evil",
                "symlink": "CUB_200_2011/link",
                "hardlink": "CUB_200_2011/hard",
                "device": "CUB_200_2011/dev",
            }[kind]
        )
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "../outside"
        elif kind == "device":
            info.type = tarfile.CHRTYPE
        payload = b"evil" if kind in ("dotdot", "absolute") else b""
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_a_malicious_tar_member_is_refused_and_nothing_extracted(tmp_path, kind, monkeypatch):
    archive = _evil_tar(kind)
    with serving({"CUB_200_2011.tgz": archive}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        with pytest.raises(UnsafeArchiveError, match="refused, nothing extracted"):
            fetch(
                "cub200",
                tmp_path / "data",
                sources=with_digest(SOURCES, "cub200", {"CUB_200_2011.tgz": _sha(archive)}),
                log=lambda m: None,
            )
    assert _leftovers(tmp_path / "data") == [] and not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()


def test_malicious_zip_members_are_refused(tmp_path):
    for name in ("../evil", "/abs/evil", "C:/evil"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("ok.txt", "fine")
            archive.writestr(name, "evil")
        path = tmp_path / "a.zip"
        path.write_bytes(buffer.getvalue())
        (tmp_path / "out").mkdir(exist_ok=True)
        with pytest.raises(UnsafeArchiveError):
            extract(path, tmp_path / "out")
        assert list((tmp_path / "out").iterdir()) == []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("link")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "../../outside")
    path.write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract(path, tmp_path / "out")


def test_counts_below_the_published_ones_leave_nothing(tmp_path, cub_tgz, monkeypatch):
    with serving({"CUB_200_2011.tgz": cub_tgz}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        with pytest.raises(ValueError, match="published copy has 5864"):
            fetch(
                "cub200",
                tmp_path / "data",
                sources=with_digest(SOURCES, "cub200", {"CUB_200_2011.tgz": _sha(cub_tgz)}),
                log=lambda m: None,
            )
    assert _leftovers(tmp_path / "data") == []  # no target, no temporary folder
    assert (tmp_path / "data" / "downloads" / "CUB_200_2011.tgz").is_file()  # the checked archive is kept


def _kaggle_cars(folder: Path) -> bytes:
    """The class-folder copy of CARS196 that pytorch-metric-learning 2.8 downloads: one image per class."""
    names = [f"Make {c} Model/{c}" if c == 7 else f"Make {c} Model" for c in range(1, 197)]
    (folder / "names.csv").parent.mkdir(parents=True)
    (folder / "names.csv").write_text("\n".join(names) + "\n")
    rows = {"train": [], "test": []}
    for c, name in enumerate(names, start=1):
        split = "train" if c % 2 else "test"
        file = f"{c:05d}.jpg"
        write_image(folder / "car_data" / "car_data" / split / name.replace("/", "-") / file, c)
        rows[split].append(f"{file},1,1,7,7,{c}")
    for split, lines in rows.items():
        (folder / f"anno_{split}.csv").write_text("\n".join(lines) + "\n")
    return _zip(folder)


def test_cars_without_a_checksum_needs_one_then_converts(tmp_path, fixture_counts, monkeypatch):
    archive = _kaggle_cars(tmp_path / "kaggle")
    with serving({"stanford-car-dataset-by-classes-folder.zip": archive}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        root = tmp_path / "data"
        assert (
            main(["data", "fetch", "cars196", "--root", str(root)]) == 2
        )  # no published checksum: its SHA-256 printed
        with pytest.raises(
            ChecksumError, match=f"--sha256 stanford-car-dataset-by-classes-folder.zip={_sha(archive).value}"
        ):
            fetch("cars196", root, log=lambda m: None)
        assert _leftovers(root) == []
        assert main(["data", "fetch", "cars196", "--root", str(root), "--sha256", _sha(archive).value]) == 0
    target = root / "CARS196"
    assert (target / "cars_annos.mat").is_file()
    test = benchmarks.read_benchmark("cars196", target, "test")
    assert len(test) == 98 and "Make 99 Model" in test.class_names
    record = json.loads((root / "CARS196.fetched.json").read_text())
    assert record["archives"][0]["checked"]["source"].endswith("(--sha256)")


def test_sop_zip_and_the_mirror(tmp_path, fixture_counts, monkeypatch):
    archive = _zip(make_sop(tmp_path / "src" / "Stanford_Online_Products"), "Stanford_Online_Products/")
    sources = with_digest(
        SOURCES, "sop", {"Stanford_Online_Products.zip": Digest("md5", hashlib.md5(archive).hexdigest(), "fixture")}
    )
    with serving({"Stanford_Online_Products.zip": archive}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url + "/")
        assert archive_url(sources["sop"].archives[0]) == f"{server.url}/Stanford_Online_Products.zip"
        target = fetch("sop", tmp_path / "data", sources=sources, log=lambda m: None)
    assert json.loads((tmp_path / "data" / "Stanford_Online_Products.fetched.json").read_text())["counts"] == {
        "trainval": 12,
        "test": 10,
    }
    assert len(benchmarks.read_benchmark("sop", target, "trainval")) == 12
    monkeypatch.delenv(MIRROR_ENV)
    assert archive_url(SOURCES["sop"].archives[0]) == SOURCES["sop"].archives[0].url


def test_inshop_is_dropped_in_by_hand_and_verified(tmp_path, fixture_counts):
    root = tmp_path / "data"
    with pytest.raises(
        FileNotFoundError,
        match=f"{root}/downloads/img.zip is missing.*"
        f"Img/img.zip and Eval/list_eval_partition.txt into {root}/downloads/",
    ):
        fetch("inshop", root, log=lambda m: None)
    source = make_inshop(tmp_path / "src")
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "img.zip").write_bytes(_zip(source / "img", "img/"))
    (root / "downloads" / "list_eval_partition.txt").write_bytes((source / "list_eval_partition.txt").read_bytes())
    with pytest.raises(ChecksumError, match="no checksum is published"):
        fetch("inshop", root, log=lambda m: None)
    wrong = {"img.zip": "0" * 64}
    with pytest.raises(ChecksumError, match="left as it is and not used"):
        fetch("inshop", root, sha256=wrong, unverified=True, log=lambda m: None)
    assert (root / "downloads" / "img.zip").is_file()  # the user's file is never deleted
    said = []
    target = fetch("inshop", root, unverified=True, log=said.append)
    assert "UNVERIFIED (no checksum checked): img.zip, list_eval_partition.txt" in said[-1]
    assert len(benchmarks.read_benchmark("inshop", target, "gallery")) == 8
    assert [a["verified"] for a in json.loads((root / "InShop.fetched.json").read_text())["archives"]] == [False, False]


def test_bn_inception_weights_are_checked_by_loading(tmp_path, monkeypatch):
    import torch

    from ranklist.models.backbones import check_weights
    from ranklist.models.bn_inception import BNInception

    buffer = io.BytesIO()
    torch.save(BNInception().state_dict(), buffer)
    weights = buffer.getvalue()
    prefix = Digest("sha256-prefix", hashlib.sha256(weights).hexdigest()[:8], "fixture")
    with serving({"bn_inception-239d2248.pth": weights, "other.pth": b"x"}) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        target = fetch(
            "bn_inception",
            tmp_path / "weights",
            sources=with_digest(SOURCES, "bn_inception", {"bn_inception-239d2248.pth": prefix}),
            check_weights=check_weights,
            log=lambda m: None,
        )
    assert target == tmp_path / "weights" / "bn_inception-239d2248.pth" and target.read_bytes() == weights
    assert (
        json.loads((tmp_path / "weights" / "bn_inception-239d2248.pth.fetched.json").read_text())["counts"]["tensors"]
        > 100
    )


def test_weights_are_not_fetched_without_their_check(tmp_path):
    with pytest.raises(ValueError, match="bn_inception is a weights file: .* needs check_weights"):
        fetch("bn_inception", tmp_path / "weights", log=lambda m: None)
    assert not (tmp_path / "weights").exists()


def test_sha256_arguments_are_checked(capsys):
    assert main(["data", "fetch", "inshop", "--sha256", "ab"]) == 2
    assert "give FILE=HEX" in capsys.readouterr().err
    assert main(["data", "fetch", "cub200", "--sha256", "CUB_200_2011.tgz=xyz"]) == 2
    assert "64 hex digits" in capsys.readouterr().err
