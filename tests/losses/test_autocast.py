"""Every loss computes in float32 whatever autocast the caller has active (docs/loss.md#precision)."""

from __future__ import annotations

import pytest
import torch

from ranklist import PRESETS, RankedListLoss
from ranklist.losses import LOSS_NAMES, build_loss
from ranklist.losses.cross_batch_memory import CrossBatchMemory
from ranklist.losses.full_precision import autocast_off

HALF = [torch.bfloat16, torch.float16]


def batch(n=48, d=16, classes=6, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g).to(device), torch.randint(0, classes, (n,), generator=g).to(device)


def value_and_grad(loss, emb, labels, cast=None, backward_in_cast=False, seed=1):
    """loss(emb, labels) and d/d emb, the forward (and optionally the backward) under `cast`."""
    emb = emb.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)  # the stochastic miners draw the same in both calls
    with cast or torch.autocast(emb.device.type, enabled=False):
        value = loss(emb, labels)
        if backward_in_cast:
            value.sum().backward()
    if not backward_in_cast:
        value.sum().backward()
    return value.detach(), emb.grad


def assert_same(got, want, rtol=1e-5):
    (value, grad), (want_value, want_grad) = got, want
    assert value.dtype == want_value.dtype == torch.float32
    assert float((value - want_value).abs().max()) <= rtol * float(want_value.abs().max())
    assert float((grad - want_grad).norm()) <= rtol * float(want_grad.norm())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_rll_under_cpu_bf16_autocast_equals_float32(preset):
    emb, labels = batch()
    loss = RankedListLoss.from_preset(preset)
    want = value_and_grad(loss, emb, labels)
    assert_same(value_and_grad(loss, emb, labels, torch.autocast("cpu", dtype=torch.bfloat16)), want)


@pytest.mark.parametrize("reduction", ["official", "none"])
def test_rll_backward_inside_autocast_equals_float32(reduction):
    # "full" with a non-uniform upstream gradient runs the kernel again in backward
    emb, labels = batch(seed=2)
    loss = RankedListLoss(gradient="full", reduction=reduction)
    want = value_and_grad(loss, emb, labels)
    cast = torch.autocast("cpu", dtype=torch.bfloat16)
    assert_same(value_and_grad(loss, emb, labels, cast, backward_in_cast=True), want)


def test_half_embeddings_under_autocast_equal_their_float32_call():
    # a model under autocast hands the loss bfloat16 embeddings
    emb, labels = batch(seed=3)
    emb = emb.bfloat16()
    loss = RankedListLoss()
    value, grad = value_and_grad(loss, emb, labels, torch.autocast("cpu", dtype=torch.bfloat16))
    want_value, want_grad = value_and_grad(loss, emb.float(), labels)
    assert grad.dtype == torch.bfloat16 and value.dtype == torch.float32
    torch.testing.assert_close(value, want_value, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, want_grad.bfloat16(), rtol=0, atol=0)


def test_cross_batch_memory_under_autocast_equals_float32():
    first, second = batch(seed=4), batch(seed=5)
    results = []
    for cast in (None, torch.autocast("cpu", dtype=torch.bfloat16)):
        memory = CrossBatchMemory(RankedListLoss(), size=64)
        memory(*first)
        results.append(value_and_grad(memory, *second, cast=cast))
    assert_same(results[1], results[0])


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_under_cpu_bf16_autocast_equals_float32(name):
    emb, labels = torch.randn(24, 16, generator=torch.Generator().manual_seed(6)), torch.arange(6).repeat_interleave(4)
    torch.manual_seed(0)  # proxies
    loss = build_loss(name, embedding_dim=16, num_classes=6)
    want = value_and_grad(loss, emb, labels)
    assert_same(value_and_grad(loss, emb, labels, torch.autocast("cpu", dtype=torch.bfloat16)), want)


def test_no_autocast_costs_nothing():
    assert not torch.is_autocast_enabled("cpu")
    assert type(autocast_off(torch.device("cpu"))).__name__ == "nullcontext"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_rll_under_cuda_autocast_equals_float32(preset, dtype):
    emb, labels = batch(device="cuda")
    loss = RankedListLoss.from_preset(preset)
    want = value_and_grad(loss, emb, labels)
    assert_same(value_and_grad(loss, emb, labels, torch.autocast("cuda", dtype=dtype)), want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_under_cuda_fp16_autocast_equals_float32(name):
    emb, labels = batch(n=24, device="cuda")[0], torch.arange(6, device="cuda").repeat_interleave(4)
    torch.manual_seed(0)  # proxies
    loss = build_loss(name, embedding_dim=16, num_classes=6).to("cuda")
    want = value_and_grad(loss, emb, labels)
    assert_same(value_and_grad(loss, emb, labels, torch.autocast("cuda", dtype=torch.float16)), want)
