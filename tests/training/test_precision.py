import pytest
import torch

from ranklist.models import build_model
from ranklist.training.config import ConfigError, load_config
from ranklist.training.precision import evaluation_precision, frozen_precision, native_bf16, training_precision
from ranklist.training.run import build_run


def _model(backbone="efficientnet_lite0", freeze=3):
    return build_model(backbone, pretrained=False, embedding_dim=8, image_size=32, freeze_blocks=freeze)


def test_frozen_precision_settings():
    cpu = torch.device("cpu")
    model = _model()
    assert frozen_precision(model, "bf16", cpu) == "bf16" and model.backbone.frozen_dtype == torch.bfloat16
    assert frozen_precision(model, "fp32", cpu) == "fp32" and model.backbone.frozen_dtype is None
    assert frozen_precision(model, "auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert frozen_precision(_model(freeze=0), "auto", cpu) == "fp32"  # nothing frozen: nothing to cast
    assert frozen_precision(_model("small_cnn", freeze=0), "auto", cpu) == "fp32"


@pytest.mark.parametrize(
    "model,setting,message",
    [
        (lambda: _model(freeze=0), "bf16", "needs frozen blocks"),
        (lambda: _model(), "fp16", "must be one of"),
    ],
)
def test_frozen_precision_refusals_name_the_problem(model, setting, message):
    with pytest.raises(ConfigError, match=message):
        frozen_precision(model(), setting, torch.device("cpu"))


def test_evaluation_precision_auto_follows_the_hardware(tiny_recipe):
    cpu = torch.device("cpu")
    assert evaluation_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert evaluation_precision("fp32", cpu) == "fp32" and evaluation_precision("bf16", cpu) == "bf16"
    run = build_run(load_config(tiny_recipe, ["precision.eval=auto"]))
    assert (
        run.evaluator.precision == evaluation_precision("auto", cpu)
        and run.val_evaluator.precision == run.evaluator.precision
    )


def test_native_bf16_is_false_off_cpu_and_cuda():
    assert native_bf16(torch.device("meta")) is False


def test_build_run_applies_and_records_it(tiny_recipe):
    run = build_run(
        load_config(
            tiny_recipe,
            [
                "model.backbone=efficientnet_lite0",
                "model.pretrained=false",
                "data.image_size=32",
                "data.resize=36",
                "model.freeze_blocks=2",
                "precision.frozen=bf16",
                "precision.train=bf16",
            ],
        )
    )
    assert run.precision.frozen == "bf16" and run.model.backbone.frozen_dtype == torch.bfloat16
    assert run.precision.train == "bf16" and run.precision.eval == "fp32"


@pytest.mark.parametrize(
    "capability,native",
    [((6, 1), False), ((7, 0), False), ((7, 5), False), ((8, 0), True), ((8, 6), True), ((9, 0), True)],
)
def test_auto_takes_bf16_only_on_cards_that_compute_it(monkeypatch, capability, native):
    """A faked card: before Ampere (8.0) bf16 is emulated, so `auto` keeps fp32 there."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    assert native_bf16(cuda) is native
    assert evaluation_precision("auto", cuda) == ("bf16" if native else "fp32")
    assert frozen_precision(_model(), "auto", cuda) == ("bf16" if native else "fp32")
    assert training_precision("auto", cuda) == ("bf16" if native else "fp32")


def test_training_auto_stays_fp32_on_a_cpu():
    """Whole-network bf16 training was slower than fp32 on a CPU with bf16 units: auto keeps fp32 there."""
    cpu = torch.device("cpu")
    assert training_precision("auto", cpu) == "fp32" and training_precision("bf16", cpu) == "bf16"
