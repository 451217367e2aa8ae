"""Hostile checkpoint files through load_model (and so read_checkpoint / load_torch_checked): each is
one clear error naming the file, or loads the right model."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch

from ranklist.atomic import CHECKSUM_RECORD, atomic_torch_save
from ranklist.models import build_model, load_model, model_checkpoint, save_model
from tests.test_atomic import _flip_byte_in_record


@pytest.fixture(scope="module")
def model():
    return build_model("small_cnn", pretrained=False, embedding_dim=4).eval()


def _saved(path, model):
    save_model(model, path)
    return path.read_bytes()


def _flip_at(path, offset_from_end):
    raw = bytearray(path.read_bytes())
    raw[len(raw) - offset_from_end] ^= 0x01
    path.write_bytes(bytes(raw))


def _write(path, model, how):
    """Write the hostile file `how` at `path`."""
    checkpoint = model_checkpoint(model)
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated_half":
        path.write_bytes(_saved(path, model)[: len(path.read_bytes()) // 2])
    elif how == "truncated_last_byte":
        path.write_bytes(_saved(path, model)[:-1])
    elif how in ("flip_weights", "flip_pickle", "flip_checksum"):
        _saved(path, model)
        record = {"flip_weights": "data/0", "flip_pickle": "data.pkl", "flip_checksum": CHECKSUM_RECORD}[how]
        _flip_byte_in_record(path, record, at=3)
    elif how == "flip_central_directory":
        _saved(path, model)
        _flip_at(path, 200)
    elif how == "flip_end_record":
        _saved(path, model)
        _flip_at(path, 30)
    elif how == "text":
        path.write_text("model: resnet\n")
    elif how == "foreign_pickle":
        path.write_bytes(pickle.dumps({"model_config": {}, "model_state": {}}))
    elif how == "foreign_zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x/y", "hello")
    elif how == "tensor_not_dict":
        atomic_torch_save(torch.arange(3), path)
    elif how == "wrong_keys":
        atomic_torch_save({"state_dict": checkpoint["model_state"]}, path)
    elif how == "missing_weight":
        checkpoint["model_state"].pop("heads.H.embed.weight")
        atomic_torch_save(checkpoint, path)
    elif how == "wrong_shape":
        checkpoint["model_state"]["heads.H.embed.weight"] = torch.zeros(7, 7)
        atomic_torch_save(checkpoint, path)
    elif how == "unknown_backbone":
        atomic_torch_save({**checkpoint, "model_config": {**checkpoint["model_config"], "backbone": "nope"}}, path)
    elif how == "config_a_list":
        atomic_torch_save({**checkpoint, "model_config": [1, 2]}, path)
    elif how == "state_a_list":
        atomic_torch_save({**checkpoint, "model_state": [1]}, path)
    elif how == "state_of_strings":
        atomic_torch_save({**checkpoint, "model_state": {k: "x" for k in checkpoint["model_state"]}}, path)
    elif how == "bad_preprocessing":
        atomic_torch_save({**checkpoint, "preprocessing": {"image_size": "big"}}, path)
    else:
        raise AssertionError(how)


ERRORS = {
    "empty": r"the file is empty \(0 bytes\)",
    "truncated_half": r"cannot read checkpoint .*: the file is truncated \(\d+ bytes, its end is missing\)",
    "truncated_last_byte": r"cannot read checkpoint .*: the file is truncated",
    "flip_weights": r"is damaged",
    "flip_pickle": r"is damaged",
    "flip_checksum": r"is damaged",
    "flip_central_directory": r"is damaged|cannot read checkpoint",
    "text": r"cannot read checkpoint .*: not a PyTorch checkpoint \(a 14-byte file starting b'model: r'\)",
    "foreign_pickle": r"cannot read checkpoint .*: not a PyTorch checkpoint \(a \d+-byte file starting b'\\x80",
    "foreign_zip": r"cannot read checkpoint .*: not a PyTorch checkpoint: a zip archive of x/y",
    "tensor_not_dict": r"it holds a Tensor, not a ranklist checkpoint",
    "wrong_keys": r"is not a ranklist model checkpoint \(needs model_config and model_state, has \['state_dict'\]\)",
    "missing_weight": r"model_state does not fit its model_config: .*heads\.H\.embed\.weight",
    "wrong_shape": r"model_state does not fit its model_config: .*size mismatch",
    "unknown_backbone": r"has an unusable model_config .*unknown backbone 'nope'",
    "config_a_list": r"model_config and model_state must be dicts, got \{'model_config': 'list'\}",
    "state_a_list": r"model_config and model_state must be dicts, got \{'model_state': 'list'\}",
    "state_of_strings": r"model_state does not fit its model_config",
    "bad_preprocessing": r"not a preprocessing record",
}


@pytest.mark.parametrize("how,message", list(ERRORS.items()), ids=list(ERRORS))
def test_bad_checkpoint_is_one_error_naming_the_file(tmp_path, model, how, message):
    path = tmp_path / "m.pt"
    _write(path, model, how)
    with pytest.raises(ValueError, match=message) as caught:
        load_model(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_and_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path / 'none.pt'}"):
        load_model(tmp_path / "none.pt")
    with pytest.raises(ValueError, match=f"cannot read checkpoint {tmp_path}: it is a folder, not a file"):
        load_model(tmp_path)


def _same_outputs(a, b):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return all(torch.equal(a(x)[k], b(x)[k]) for k in a(x))


def test_checkpoints_that_still_hold_the_right_model_load(tmp_path, model):
    checkpoint = model_checkpoint(model)
    atomic_torch_save({**checkpoint, "optimizer": {}, "epoch": 3}, tmp_path / "trainer_style.pt")
    (tmp_path / "trailing_bytes.pt").write_bytes(_saved(tmp_path / "m.pt", model) + b"\0" * 64)
    for name in ("trainer_style.pt", "trailing_bytes.pt"):
        assert _same_outputs(load_model(tmp_path / name).eval(), model), name


def test_checkpoints_without_a_checksum_or_a_preprocessing_record_are_refused(tmp_path, model):
    checkpoint = model_checkpoint(model)
    torch.save(checkpoint, tmp_path / "unchecked.pt")
    torch.save(checkpoint, tmp_path / "legacy_format.pt", _use_new_zipfile_serialization=False)
    for name in ("unchecked.pt", "legacy_format.pt"):
        with pytest.raises(ValueError, match=f"cannot read checkpoint {tmp_path / name}: it has no checksum record"):
            load_model(tmp_path / name)
    del checkpoint["preprocessing"]
    atomic_torch_save(checkpoint, tmp_path / "unprocessed.pt")
    with pytest.raises(ValueError, match=f"{tmp_path / 'unprocessed.pt'} has no preprocessing record"):
        load_model(tmp_path / "unprocessed.pt")


@pytest.mark.parametrize("offset", [22, 30, 60, 100, 150])
def test_a_flip_near_the_end_is_refused_or_harmless(tmp_path, model, offset):
    """Flips in zip bookkeeping that nothing reads may load; then the model must be the saved one."""
    path = tmp_path / "m.pt"
    _saved(path, model)
    _flip_at(path, offset)
    try:
        loaded = load_model(path)
    except ValueError as error:
        assert str(path) in str(error)
    else:
        assert _same_outputs(loaded.eval(), model)


def test_a_pickle_that_runs_code_is_not_run(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()
