"""Training-step throughput for a recipe and each backbone, and what each speed option is worth; prints JSON.

For every backbone of ranklist.models.BACKBONES (or --backbones), with the recipe's batch (C x K),
image size, loss and optimiser (configs/demo.yaml by default), on synthetic 64 px uint8 images
through the recipe's training transform (the emoji benchmark's shape; no data set is read):
- images/s and the time of one step split into data (sampler + transform + collate), forward,
  loss forward, backward (the loss's share separately: its backward to the embeddings), optimiser;
- the step time of each option against the recipe's own step (its model.freeze_blocks included,
  where the backbone can freeze; model.freeze_blocks=0 compares against the whole network trained),
  as a ratio (< 1: faster), every
  variant stepping in turn on the same batch so that machine load hits all alike:
  contiguous (channels-last off), bf16 autocast (only where the CPU has AVX512-BF16 or AMX, or on
  CUDA), torch.compile of the model (its compile time reported apart), freezing the stem and first
  blocks (backbones with `freeze`), the frozen blocks' training forward in fp32 and in bf16
  (precision.frozen; backbones that can), EfficientNet-Lite's layers as its package builds
  them (package_layers: a ZeroPad2d copy before each padded convolution, ReLU6 out of place, batch
  norms not folded; stride2_zero_pad: that copy back before the stride-2 convolutions only;
  unfolded_norms: the eval-mode batch norms run apart again), the backbone's batch-norm statistics
  frozen (freeze_bn_on, or _off where the recipe freezes them; model.freeze_bn), loader workers
  with prefetch;
- evaluation forward (eval mode, batch eval.batch_size): torch.inference_mode and bf16 against no_grad,
  and the largest difference of the bf16 embeddings from fp32 (cosine).

    python benchmarks/train_step.py                              # demo recipe, every backbone
    python benchmarks/train_step.py --backbones efficientnet_lite0 --steps 8
    python benchmarks/train_step.py --quick                      # seconds: small_cnn-sized smoke run
    python benchmarks/train_step.py --data-path                  # the training data path alone, CUB-shaped

--data-path measures only the data path of the training loop (no model) on a CUB-shaped fixture:
80 classes of 500 x 375 JPEG files, C = 60, K = 3 (so an epoch is one batch), the paper recipe's
256 -> 227 transform, --workers workers: steps/s with a new DataLoader (and new workers) every
epoch, as the trainer did before issue 24, against the trainer's one loader for the run
(training/loader.py), each for --steps steps after --warmup. --step-s S sleeps S seconds after each
batch, standing for a GPU step during which the CPU is free (the loader's workers can work ahead).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ranklist.data import ArrayDataset, ClassBalancedBatchSampler, build_transform
from ranklist.models import BACKBONES, build_model, parameter_groups
from ranklist.training.config import RunConfig, load_config
from ranklist.training.optimizers import build_optimizer
from ranklist.training.precision import frozen_precision, native_bf16
from ranklist.training.run import build_level_losses

ROOT = Path(__file__).resolve().parents[1]
SOURCE_SIZE = 64  # the emoji benchmark's images
FREEZE_BLOCKS = 3  # stem + first 3 blocks (the stride-2 and stride-4 stages of EfficientNet-Lite0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Variant:
    """One way of running the recipe's training step, with its own model and optimiser."""

    name: str
    model: torch.nn.Module
    step_model: Callable
    optimizer: torch.optim.Optimizer
    losses: torch.nn.ModuleDict
    amp: bool = False
    channels_last: bool = True
    loader: str = "main"  # the loader feeding it: "main" (in process) or "workers"
    times: dict[str, list[float]] = field(default_factory=dict)


def package_layers(model: torch.nn.Module, *, which: str = "all") -> torch.nn.Module:
    """EfficientNet-Lite's layers put back as its package builds them (same outputs):
    "all": a ZeroPad2d copy before each padded convolution, ReLU6 out of place, no batch norm folded;
    "stride2_zero_pad": only the stride-2 convolutions' padded copy (the shift's saving alone);
    "unfolded_norms": only the batch norms unfolded (the folding's saving alone)."""
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    from ranklist.models.bn_folding import FoldedBatchNorm2d
    from ranklist.models.efficientnet_lite import SamePaddingConv2d

    unfold = which in ("all", "unfolded_norms")
    for module in list(model.modules()):
        if isinstance(module, torch.nn.ReLU6) and which == "all":
            module.inplace = False
        if isinstance(module, FoldedBatchNorm2d) and unfold:
            module.__class__ = torch.nn.BatchNorm2d
        if "folded_norm" in vars(module) and unfold:
            del module.folded_norm
        if isinstance(module, SamePaddingConv2d) and which == "all":
            if module.padding != (0, 0):
                module.static_padding = _zero_pad(module)
            module.__class__ = Conv2dStaticSamePadding
        for name, child in list(module.named_children()):  # a copy, then the convolution (its fold kept)
            if which == "stride2_zero_pad" and isinstance(child, SamePaddingConv2d) and any(child.shift):
                setattr(module, name, torch.nn.Sequential(_zero_pad(child), child))
    return model


def _zero_pad(conv: torch.nn.Conv2d) -> torch.nn.ZeroPad2d:
    """The package's padded copy for a SamePaddingConv2d, which then pads nothing itself."""
    (bottom, right), (down, across) = conv.padding, conv.shift
    conv.padding, conv.shift = (0, 0), (0, 0)
    return torch.nn.ZeroPad2d((right - across, right, bottom - down, bottom))


def _make_variant(
    name: str,
    config: RunConfig,
    base: torch.nn.Module,
    device: torch.device,
    num_classes: int,
    *,
    amp: bool = False,
    channels_last: bool | None = None,
    compile: bool = False,
    freeze: int = 0,
    loader: str = "main",
    frozen: str | None = None,
    package: str | None = None,
    freeze_bn: bool | None = None,
) -> Variant:
    model = package_layers(copy.deepcopy(base), which=package) if package else copy.deepcopy(base)
    if freeze_bn is not None:
        model.freeze_bn = freeze_bn  # applied by model.train() below
    if freeze:
        model.backbone.freeze(freeze)
    frozen = frozen or config.precision.frozen
    frozen_precision(model, frozen if freeze or frozen != "bf16" else "fp32", device)
    channels_last = config.train.channels_last if channels_last is None else channels_last
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format).train()
    losses = build_level_losses(config, model.embedding_dims, num_classes).to(device)
    o = config.optim
    groups = parameter_groups(model, lr=o.lr, new_layer_lr_mult=o.new_layer_lr_mult, weight_decay=o.weight_decay)
    if list(losses.parameters()):  # proxies are new layers too
        groups.append(
            {"name": "loss", "params": list(losses.parameters()), "lr": o.lr * o.new_layer_lr_mult, "weight_decay": 0.0}
        )
    optimizer, _ = build_optimizer(groups, o)
    step_model = torch.compile(model) if compile else model
    return Variant(name, model, step_model, optimizer, losses, amp, channels_last, loader)


def _train_step(v: Variant, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> dict[str, float]:
    """One step; the backward is split at the embeddings: the loss's part, then the model's."""
    marks = [time.perf_counter()]

    def mark() -> None:
        _sync(device)
        marks.append(time.perf_counter())

    images = images.to(device, memory_format=torch.channels_last if v.channels_last else torch.contiguous_format)
    labels = labels.to(device)
    amp_dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    with torch.autocast(device.type, dtype=amp_dtype, enabled=v.amp):
        outputs = v.step_model(images)
    mark()
    detached = {level: out.float().detach().requires_grad_() for level, out in outputs.items()}
    loss = sum(v.losses[level](emb, labels) for level, emb in detached.items())
    mark()
    v.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    mark()
    torch.autograd.backward(
        [outputs[level] for level in detached], [detached[level].grad.to(outputs[level].dtype) for level in detached]
    )
    mark()
    v.optimizer.step()
    mark()
    names = ("forward", "loss_forward", "loss_backward", "model_backward", "optimizer")
    return {name: b - a for name, a, b in zip(names, marks, marks[1:])}


def _batches(loader: DataLoader, device: torch.device):
    """Endless (batch, seconds spent waiting for it)."""
    while True:
        for_start = time.perf_counter()
        for images, labels in loader:
            _sync(device)
            yield images, labels, time.perf_counter() - for_start
            for_start = time.perf_counter()


def _loaders(config: RunConfig, normalization: str, n_classes: int, workers: int):
    d = config.data
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, size=(n_classes * d.samples_per_class, SOURCE_SIZE, SOURCE_SIZE, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(n_classes), d.samples_per_class)
    transform = build_transform(
        True, image_size=d.image_size, resize=d.resize, normalization=normalization, recipe=d.recipe, hflip=d.hflip
    )
    dataset = ArrayDataset(images, labels, [str(c) for c in range(n_classes)], transform=transform)

    def loader(num_workers: int) -> DataLoader:
        sampler = ClassBalancedBatchSampler(labels, d.classes_per_batch, d.samples_per_class, seed=0)
        extra = dict(persistent_workers=True, prefetch_factor=2) if num_workers else {}
        return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, **extra)

    loaders = {"main": loader(0), **({"workers": loader(workers)} if workers else {})}
    return loaders


def _variants(
    config: RunConfig, base, device, num_classes: int, wanted: list[str], workers: int, freeze: list[int]
) -> list[Variant]:
    recipe_freeze = config.model.freeze_blocks if hasattr(base.backbone, "freeze") else 0
    candidates: dict[str, Callable[[], Variant]] = {
        "contiguous": lambda: _make_variant("contiguous", config, base, device, num_classes, channels_last=False),
        "bf16_autocast": lambda: _make_variant("bf16_autocast", config, base, device, num_classes, amp=True),
        "compile": lambda: _make_variant("compile", config, base, device, num_classes, compile=True),
        "package_layers": lambda: _make_variant(
            "package_layers", config, base, device, num_classes, package="all", freeze=recipe_freeze
        ),
        **{
            name: (
                lambda name=name: _make_variant(
                    name, config, base, device, num_classes, package=name, freeze=recipe_freeze
                )
            )
            for name in ("stride2_zero_pad", "unfolded_norms")
        },
        **{
            f"frozen_{p}": (
                lambda p=p: _make_variant(
                    f"frozen_{p}", config, base, device, num_classes, freeze=config.model.freeze_blocks, frozen=p
                )
            )
            for p in ("fp32", "bf16")
        },
        **{
            f"freeze_stem_{n}_blocks": (
                lambda n=n: _make_variant(f"freeze_stem_{n}_blocks", config, base, device, num_classes, freeze=n)
            )
            for n in freeze
        },
        f"workers_{workers}": lambda: _make_variant(
            f"workers_{workers}", config, base, device, num_classes, loader="workers"
        ),
    }
    usable = {
        "bf16_autocast": native_bf16(device),
        "compile": True,
        "package_layers": hasattr(base.backbone, "set_frozen_precision"),  # EfficientNet-Lite
        "stride2_zero_pad": hasattr(base.backbone, "set_frozen_precision"),
        "unfolded_norms": hasattr(base.backbone, "set_frozen_precision"),
        **{
            f"frozen_{p}": config.model.freeze_blocks > 0 and hasattr(base.backbone, "set_frozen_precision")
            for p in ("fp32", "bf16")
        },
        **{f"freeze_stem_{n}_blocks": hasattr(base.backbone, "freeze") for n in freeze},
        f"workers_{workers}": workers > 0,
    }
    frozen_bn = config.model.freeze_bn
    candidates["freeze_bn"] = lambda: _make_variant(
        f"freeze_bn_{'off' if frozen_bn else 'on'}",
        config,
        base,
        device,
        num_classes,
        freeze=recipe_freeze,
        freeze_bn=not frozen_bn,
    )
    candidates["recipe"] = lambda: _make_variant("recipe", config, base, device, num_classes, freeze=recipe_freeze)
    return [
        make() for name, make in candidates.items() if name == "recipe" or (name in wanted and usable.get(name, True))
    ]


def _eval_forward(base, config: RunConfig, device: torch.device, steps: int) -> dict:
    """Eval-mode forward of one evaluation batch: no_grad, inference_mode, inference_mode + bf16."""
    model = copy.deepcopy(base).to(device, memory_format=torch.channels_last).eval()
    size, batch = config.data.image_size, config.eval.batch_size
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(
        device, memory_format=torch.channels_last
    )
    bf16 = native_bf16(device)
    modes = {"no_grad": (torch.no_grad, False), "inference_mode": (torch.inference_mode, False)}
    if bf16:
        modes["inference_mode_bf16"] = (torch.inference_mode, True)
    times: dict[str, list[float]] = {name: [] for name in modes}
    outputs = {}
    for _ in range(steps + 1):  # the first round warms up and is not counted
        for name, (context, amp) in modes.items():
            _sync(device)
            start = time.perf_counter()
            with context(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                outputs[name] = torch.cat([o.float() for o in model(x).values()], dim=1)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    median = {name: float(np.median(t[1:])) for name, t in times.items()}
    result = {
        "batch": batch,
        "images_per_s": {name: round(batch / s, 1) for name, s in median.items()},
        "x_no_grad": {name: round(s / median["no_grad"], 3) for name, s in median.items()},
    }
    if bf16:
        cos = torch.nn.functional.cosine_similarity(outputs["inference_mode_bf16"], outputs["no_grad"], dim=1)
        result["bf16_min_cosine_to_fp32"] = round(float(cos.min()), 5)
    return result


def measure_backbone(name: str, config: RunConfig, args) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    base = build_model(
        name,
        embedding_dim=config.model.embedding_dim,
        levels=config.model.levels,
        pretrained=False,
        image_size=config.data.image_size,
        freeze_bn=config.model.freeze_bn,
    )
    n_classes = max(config.data.classes_per_batch * 4, 16)
    variants = _variants(config, base, device, n_classes, args.variants, args.workers, args.freeze_blocks)
    loaders = {
        key: _batches(loader, device)
        for key, loader in _loaders(config, base.normalization, n_classes, args.workers).items()
    }
    compile_s = None
    for step in range(args.warmup + args.steps):
        main = next(loaders["main"])
        for v in variants:  # interleaved: every variant takes this step before the next batch
            # The workers variant waits on its own loader (same shapes); the others'
            # data time is the in-process loader's, measured after the loop.
            images, labels, data_s = (main[0], main[1], 0.0) if v.loader == "main" else next(loaders[v.loader])
            parts = _train_step(v, images, labels, device)
            if v.name == "compile" and step == 0:
                compile_s = sum(parts.values())
            if step >= args.warmup:
                for key, value in {**parts, "data": data_s}.items():
                    v.times.setdefault(key, []).append(value)
    return _report(name, config, variants, loaders, compile_s, args, base, device)


def _report(name, config, variants, loaders, compile_s, args, base, device) -> dict:
    main_data = _data_time(loaders["main"], args.steps)
    batch = config.data.classes_per_batch * config.data.samples_per_class
    per_variant = {}
    for v in variants:
        parts = {key: float(np.median(values)) for key, values in v.times.items()}
        parts["data"] = main_data if v.loader == "main" else parts["data"]
        parts["step"] = sum(parts.values())
        per_variant[v.name] = parts
    recipe = per_variant["recipe"]
    result = {
        "parameters": sum(p.numel() for p in base.parameters()),
        "images_per_s": round(batch / recipe["step"], 1),
        "step_s": round(recipe["step"], 4),
        "split_s": {key: round(value, 4) for key, value in recipe.items() if key != "step"},
        "split_share": {key: round(value / recipe["step"], 3) for key, value in recipe.items() if key != "step"},
        "options_x_recipe": {n: round(p["step"] / recipe["step"], 3) for n, p in per_variant.items() if n != "recipe"},
        "options_images_per_s": {n: round(batch / p["step"], 1) for n, p in per_variant.items()},
    }
    if compile_s is not None:
        result["compile_first_step_s"] = round(compile_s, 1)
    if args.eval_steps:
        result["eval_forward"] = _eval_forward(base, config, device, args.eval_steps)
    return result


def _data_time(batches, steps: int) -> float:
    """Median seconds to produce one batch in process (sampler + transform + collate)."""
    return float(np.median([next(batches)[2] for _ in range(max(steps, 1))]))


def _cub_shaped_files(root: Path, classes: int, per_class: int, size: tuple[int, int]) -> tuple[list[Path], np.ndarray]:
    """JPEG files of smooth random images (photo-like to decode), per_class of each class."""
    from PIL import Image

    gen = np.random.default_rng(0)
    paths = []
    for index in range(classes * per_class):
        coarse = gen.integers(0, 256, size=(size[1] // 25, size[0] // 25, 3), dtype=np.uint8)
        paths.append(root / f"{index // per_class:03d}_{index % per_class}.jpg")
        Image.fromarray(coarse).resize(size, Image.BILINEAR).save(paths[-1], quality=90)
    return paths, np.repeat(np.arange(classes), per_class)


def measure_data_path(args) -> dict:
    """Steps/s of the training data path: a loader per epoch (before) against one for the run (now)."""
    import tempfile
    from types import SimpleNamespace

    from ranklist.data import ImageFileDataset
    from ranklist.training.loader import training_loader

    classes, c, k = 80, 60, 3
    image_size, resize, size = (64, 72, (125, 94)) if args.quick else (227, 256, (500, 375))
    with tempfile.TemporaryDirectory() as folder:
        paths, labels = _cub_shaped_files(Path(folder), classes, 4, size)
        dataset = ImageFileDataset(
            paths,
            labels,
            [str(i) for i in range(classes)],
            transform=build_transform(True, image_size=image_size, resize=resize, normalization="imagenet"),
        )
        sampler = ClassBalancedBatchSampler(labels, c, k, seed=0)

        def per_epoch():  # the trainer's loop before: a DataLoader, and its workers, per epoch
            for epoch in itertools.count():
                sampler.set_epoch(epoch)
                yield from DataLoader(
                    dataset,
                    batch_sampler=sampler,
                    num_workers=args.workers,
                    generator=torch.Generator().manual_seed(epoch),
                )

        run = SimpleNamespace(
            config=SimpleNamespace(data=SimpleNamespace(num_workers=args.workers), train=SimpleNamespace(seed=0)),
            splits=SimpleNamespace(train=dataset),
            sampler=sampler,
            device=torch.device("cpu"),
        )
        paths_s = {
            "loader_per_epoch": _steps_per_s(per_epoch(), args),
            "one_loader": _steps_per_s(iter(training_loader(run, SimpleNamespace(epoch=0, batch=0))), args),
        }
    return {
        "benchmark": "train_step/data_path",
        "fixture": f"{classes} classes x 4 JPEG files of {size[0]} x {size[1]}, "
        f"C x K = {c} x {k}, {image_size} px crops of {resize}",
        "batches_per_epoch": len(sampler),
        "workers": args.workers,
        "steps": args.steps,
        "step_s": args.step_s,
        "steps_per_s": {name: round(v, 3) for name, v in paths_s.items()},
        "one_loader_x_per_epoch": round(paths_s["one_loader"] / paths_s["loader_per_epoch"], 2),
    }


def _steps_per_s(batches, args) -> float:
    for _ in range(args.warmup):
        next(batches)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(batches)
        time.sleep(args.step_s)
    return args.steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. data.image_size=64")
    parser.add_argument("--backbones", nargs="+", default=None, help=f"default: every one of {sorted(BACKBONES)}")
    parser.add_argument("--steps", type=int, default=5, help="measured steps per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--eval-steps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="loader workers of the workers variant (0: skip it)")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[
            "contiguous",
            "bf16_autocast",
            "compile",
            "freeze",
            "frozen",
            "package_layers",
            "stride2_zero_pad",
            "unfolded_norms",
            "freeze_bn",
            "workers",
        ],
    )
    parser.add_argument(
        "--freeze-blocks",
        nargs="+",
        type=int,
        default=[FREEZE_BLOCKS],
        help="variants freezing the stem and this many blocks",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the recipe's train.threads)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run in seconds: 32 px, batch 4 x 2, 1 step, no compile"
    )
    parser.add_argument(
        "--data-path", action="store_true", help="the training data path alone on a CUB-shaped fixture (see above)"
    )
    parser.add_argument(
        "--step-s", type=float, default=0.0, help="--data-path: seconds of an idle-CPU (GPU) step after each batch"
    )
    args = parser.parse_args(argv)
    if args.data_path:
        if args.quick:
            args.steps, args.warmup = 1, 1
        print(
            json.dumps(
                {**measure_data_path(args), "threads": torch.get_num_threads(), "torch": torch.__version__}, indent=2
            )
        )
        return
    overrides = list(args.overrides)
    if args.quick:
        overrides += ["data.image_size=32", "data.classes_per_batch=4", "data.samples_per_class=2", "eval.batch_size=8"]
        args.steps, args.warmup, args.eval_steps = 1, 1, 1
        args.variants = [v for v in args.variants if v != "compile"]
    named = {
        "workers": [f"workers_{args.workers}"],
        "frozen": ["frozen_fp32", "frozen_bf16"],
        "freeze": [f"freeze_stem_{n}_blocks" for n in args.freeze_blocks],
    }
    args.variants = [name for v in args.variants for name in named.get(v, [v])]
    config = load_config(args.config, overrides)
    backbones = args.backbones or sorted(BACKBONES)
    unknown = [b for b in backbones if b not in BACKBONES]
    if unknown:
        raise SystemExit(f"unknown backbones {unknown}; choose among {sorted(BACKBONES)}")
    torch.set_num_threads(args.threads or config.train.threads or torch.get_num_threads())
    results = {}
    for name in backbones:
        results[name] = measure_backbone(name, config, args)
        print(name, json.dumps(results[name]), file=sys.stderr)
    print(
        json.dumps(
            {
                "benchmark": "train_step",
                "config": os.path.relpath(args.config, ROOT) if args.config.startswith(str(ROOT)) else args.config,
                "overrides": overrides,
                "batch": f"{config.data.classes_per_batch} x {config.data.samples_per_class}",
                "image_size": config.data.image_size,
                "device": args.device,
                "threads": torch.get_num_threads(),
                "cpu_bf16_units": native_bf16(torch.device("cpu")),
                "torch": torch.__version__,
                "steps": args.steps,
                "backbones": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
