import pytest
import torch

from ranklist.atomic import atomic_torch_save
from ranklist.models import build_model, load_model, model_checkpoint, save_model


def test_checkpoint_recreates_the_model_from_a_path_or_a_dict(tmp_path):
    model = build_model("small_cnn", pretrained=False, embedding_dim={"L": 4, "M": 6, "H": 8}, image_size=40).eval()
    save_model(model, tmp_path / "m.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # atomic: no temporary left behind
    x = torch.randn(2, 3, 40, 40)
    expected = model(x)
    trainer_style = {**model_checkpoint(model), "optimizer": {}, "step": 7}
    for source in (tmp_path / "m.pt", str(tmp_path / "m.pt"), trainer_style):
        again = load_model(source).eval()
        assert again.config == {**model.config, "pretrained": False}
        for lvl, value in again(x).items():
            torch.testing.assert_close(value, expected[lvl])


def test_a_model_built_from_a_weights_file_reloads_without_it(tmp_path):
    from ranklist.models.bn_inception import BNInception

    weights = tmp_path / "bn_inception.pth"
    torch.save(BNInception().state_dict(), weights)
    model = build_model("bn_inception", pretrained=str(weights), embedding_dim=4, image_size=64).eval()
    save_model(model, tmp_path / "m.pt")
    weights.unlink()
    again = load_model(tmp_path / "m.pt").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x)["H"], model(x)["H"])


def test_incompatible_checkpoints_give_clear_errors(tmp_path):
    model = build_model("small_cnn", pretrained=False, embedding_dim=4)
    bad = model_checkpoint(model)
    bad["model_state"].pop("heads.H.embed.weight")
    with pytest.raises(ValueError, match=r"model_state does not fit its model_config.*heads\.H\.embed\.weight"):
        load_model(bad)
    bad = model_checkpoint(model)
    bad["model_config"]["embedding_dim"] = {"L": 5, "M": 4, "H": 4}
    with pytest.raises(ValueError, match="size mismatch for heads.L.embed.weight"):
        load_model(bad)
    bad = model_checkpoint(model)
    bad["model_config"]["backbone"] = "resnet9"
    with pytest.raises(ValueError, match="unusable model_config.*unknown backbone 'resnet9'"):
        load_model(bad)
    atomic_torch_save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt is not a ranklist model checkpoint .*\['weights'\]"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*junk.pt"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")


def test_bit_flipped_model_checkpoint_is_refused(tmp_path):
    # Issue 13: a flipped bit in the weights loaded silently (Recall@1 37.5 % -> 10 %).
    from tests.test_atomic import _flip_byte_in_record

    model = build_model("small_cnn", pretrained=False, embedding_dim=4)
    save_model(model, tmp_path / "m.pt")
    load_model(tmp_path / "m.pt")
    _flip_byte_in_record(tmp_path / "m.pt", "data/3", at=9)
    with pytest.raises(ValueError, match=rf"checkpoint {tmp_path / 'm.pt'} is damaged"):
        load_model(tmp_path / "m.pt")
