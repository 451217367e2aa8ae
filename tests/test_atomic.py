import pytest
import torch

from ranklist.atomic import atomic_path, atomic_torch_save, atomic_write_text


def test_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failure_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_torch_round_trip(tmp_path):
    atomic_torch_save({"x": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt")["x"], torch.arange(3))


def test_files_get_the_usual_permissions(tmp_path):
    import os

    atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def _flip_byte_in_record(path, suffix, at=5):
    """Flip one bit inside the stored bytes of the zip record whose name ends with `suffix`."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(suffix))
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (
        int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    raw[info.header_offset + 30 + name_len + extra_len + at] ^= 0x10
    path.write_bytes(bytes(raw))


def test_checksummed_round_trip_and_bit_flip_is_refused(tmp_path):
    from ranklist.atomic import load_torch_checked, verify_torch_checksum

    path = tmp_path / "c.pt"
    atomic_torch_save({"x": torch.arange(100.0), "meta": {"step": 3}}, path)
    assert verify_torch_checksum(path)
    assert torch.equal(load_torch_checked(path)["x"], torch.arange(100.0))
    _flip_byte_in_record(path, "data/0", at=17)
    assert torch.load(path, weights_only=False)["x"][4] != 4.0  # torch alone loads the damage silently
    with pytest.raises(ValueError, match=rf"checkpoint {path} is damaged"):
        load_torch_checked(path)


def test_flipped_checksum_record_or_pickle_is_refused(tmp_path):
    from ranklist.atomic import CHECKSUM_RECORD, load_torch_checked

    for suffix in (CHECKSUM_RECORD, "data.pkl"):
        path = tmp_path / f"{suffix}.pt"
        atomic_torch_save({"x": torch.arange(10.0)}, path)
        _flip_byte_in_record(path, suffix, at=2)
        with pytest.raises(ValueError, match=rf"checkpoint {path} is damaged"):
            load_torch_checked(path)


def test_files_without_checksum_are_refused_by_name(tmp_path):
    from ranklist.atomic import load_torch_checked, verify_torch_checksum

    for legacy in (False, True):  # torch's zip format and its older pickle format
        path = tmp_path / f"old{legacy}.pt"
        torch.save({"x": torch.arange(3)}, path, _use_new_zipfile_serialization=not legacy)
        assert not verify_torch_checksum(path)
        with pytest.raises(ValueError, match=rf"cannot read checkpoint {path}: it has no checksum record"):
            load_torch_checked(path)


def test_empty_truncated_missing_and_foreign_files_name_the_file(tmp_path):
    import pickle

    from ranklist.atomic import load_torch_checked

    path = tmp_path / "c.pt"
    atomic_torch_save({"x": torch.arange(1000.0)}, path)
    whole = path.read_bytes()
    cases = {
        "empty.pt": b"",
        "truncated.pt": whole[: len(whole) // 2],
        "text.pt": b"hello\n",
        "pickle.pt": pickle.dumps({"x": 1}),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=rf"cannot read checkpoint {tmp_path / name}: "):
            load_torch_checked(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_torch_checked(tmp_path / "missing.pt")


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (root only: mounting needs it; CI runs as root)."""
    import os
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing(full_disk, capsys):
    import errno

    from ranklist.cli import main
    from tests.serving.fixtures import make_checkpoint

    with pytest.raises(OSError) as caught:
        atomic_torch_save({"x": torch.zeros(100_000)}, full_disk / "c.pt")
    assert caught.value.errno == errno.ENOSPC and list(full_disk.iterdir()) == []
    checkpoint = make_checkpoint(full_disk.parent / "m.pt")
    assert main(["export", str(checkpoint), "--out", str(full_disk / "m.onnx")]) == 2
    assert capsys.readouterr().err.strip().startswith("ranklist: error: No space left on device")
    assert list(full_disk.iterdir()) == []
