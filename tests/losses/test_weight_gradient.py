"""weight_gradient=True: the normalised pair weights are differentiated (pytorch-metric-learning's
reading; docs/loss.md#differentiating-through-the-weights), against the slow float64 reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from ranklist import RankedListLoss, ranked_list_loss
from ranklist.losses import build_loss, loss_params
from tests.losses.reference_rll import reference_ranked_list_loss
from tests.losses.test_ranked_list import (
    assert_matches_reference,
    batch,
    near_duplicate_batch,
    relative_error,
    value_and_grad,
)

REDUCTIONS = ["mean", "sum", "official", "none"]
GRADIENTS = ["query", "full"]


@pytest.mark.parametrize("reduction,gradient", list(itertools.product(REDUCTIONS, GRADIENTS)))
def test_matches_reference(reduction, gradient):
    emb, labels = batch(seed=11)
    assert_matches_reference(emb, labels, reduction=reduction, gradient=gradient, weight_gradient=True)


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_matches_reference_with_positive_weighting_simpler_boundaries_and_a_reference_set(gradient):
    emb, labels = batch(seed=12)
    ref, ref_labels = batch(n=15, seed=13)
    for alpha, margin in [(None, 0.4), (1.0, 0.1), (1.4, 1.4)]:
        kwargs = dict(
            alpha=alpha,
            margin=margin,
            pos_temperature=3.0,
            neg_temperature=7.0,
            imbalance=0.3,
            reduction="official",
            gradient=gradient,
            weight_gradient=True,
        )
        assert_matches_reference(emb, labels, **kwargs)
        assert_matches_reference(emb, labels, ref_emb=ref, ref_labels=ref_labels, **kwargs)


def test_the_weights_change_the_gradient_but_not_the_value():
    emb, labels = batch(seed=14)
    fixed = value_and_grad(lambda e: ranked_list_loss(e, labels), emb)
    moving = value_and_grad(lambda e: ranked_list_loss(e, labels, weight_gradient=True), emb)
    assert torch.equal(fixed[0], moving[0])
    assert (fixed[1] - moving[1]).norm() > 0.1 * fixed[1].norm()
    # at zero temperatures the weights are uniform constants: both readings agree
    zero = dict(neg_temperature=0.0, pos_temperature=0.0)
    torch.testing.assert_close(
        value_and_grad(lambda e: ranked_list_loss(e, labels, **zero), emb),
        value_and_grad(lambda e: ranked_list_loss(e, labels, weight_gradient=True, **zero), emb),
    )


def test_gradcheck_at_nonzero_temperatures():
    # With the weights differentiated the closed form is the true gradient of the value at any
    # temperature: "full" on the batch, and "query" against a constant reference set.
    emb, labels = batch(n=9, d=4, classes=3, seed=15)
    ref, ref_labels = batch(n=7, d=4, classes=3, seed=16)
    common = dict(neg_temperature=4.0, pos_temperature=2.0, weight_gradient=True)
    for reduction in ["mean", "sum", "none"]:
        assert torch.autograd.gradcheck(
            lambda e: ranked_list_loss(e, labels, reduction=reduction, gradient="full", **common),
            emb.clone().requires_grad_(True),
        )
        assert torch.autograd.gradcheck(
            lambda e: ranked_list_loss(
                e, labels, ref_emb=ref, ref_labels=ref_labels, reduction=reduction, gradient="query", **common
            ),
            emb.clone().requires_grad_(True),
        )


@pytest.mark.parametrize("gap", [1e-2, 1e-4, 1e-6])
@pytest.mark.parametrize("gradient", GRADIENTS)
def test_float32_near_duplicates_match_float64_reference(gap, gradient):
    # near pairs are recomputed from the rows' difference: that path honours the option too
    kwargs = dict(gradient=gradient, weight_gradient=True, pos_temperature=2.0)
    for seed in range(2):
        x, labels = near_duplicate_batch(seed, gap)
        got = value_and_grad(lambda e: ranked_list_loss(e, labels, **kwargs), x)
        want = value_and_grad(lambda e: reference_ranked_list_loss(e, labels, **kwargs), x.double())
        assert relative_error(got[0], want[0]) <= 1e-5 and relative_error(got[1], want[1]) <= 1e-5


def test_blocks_give_the_same_result():
    emb, labels = batch(seed=18)
    kwargs = dict(gradient="full", reduction="official", weight_gradient=True)
    whole = value_and_grad(lambda e: ranked_list_loss(e, labels, **kwargs), emb)
    torch.testing.assert_close(
        value_and_grad(lambda e: ranked_list_loss(e, labels, block_size=5, **kwargs), emb), whole
    )


def _pml(emb, labels, alpha, margin, tn, tp):
    from pytorch_metric_learning.losses import RankedListLoss as PmlRankedListLoss

    with pytest.warns(UserWarning, match="too high") if max(tn, tp) > 5 else _no_warning():
        loss = PmlRankedListLoss(margin=margin, Tn=tn, Tp=tp, alpha=alpha, imbalance=0.5)
    return value_and_grad(lambda e: loss(e, labels), emb)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("alpha,margin,tn,tp", [(1.2, 0.4, 10.0, 0.0), (None, 0.4, 10.0, 3.0), (1.6, 0.6, 4.0, 2.0)])
def test_pytorch_metric_learning_is_our_reading_plus_its_column_epsilon(alpha, margin, tn, tp):
    # pml: weights differentiated, "full", mean over the queries, each weight sum + 1e-5 per
    # column. The slow reference with that epsilon is pml to rounding; ours is the reference
    # without it (test_matches_reference).
    emb, labels = batch(n=32, d=8, classes=4, seed=19)
    theirs = _pml(emb, labels, alpha, margin, tn, tp)
    kwargs = dict(
        alpha=alpha, margin=margin, neg_temperature=tn, pos_temperature=tp, gradient="full", weight_gradient=True
    )
    reference = value_and_grad(lambda e: reference_ranked_list_loss(e, labels, column_eps=1e-5, **kwargs), emb)
    torch.testing.assert_close(reference, theirs, rtol=1e-10, atol=1e-14)


def test_equals_pytorch_metric_learning_where_its_epsilon_vanishes():
    # Temperatures where every mined weight sum dwarfs pml's N * 1e-5: ours equals pml to 1e-6
    # (measured 2.4e-13 in the gradient), while the constant-weight reading differs by 15 %.
    emb, labels = batch(n=32, d=8, classes=4, seed=19)
    theirs = _pml(emb, labels, 1.6, 0.6, 40.0, 40.0)
    kwargs = dict(alpha=1.6, margin=0.6, neg_temperature=40.0, pos_temperature=40.0, gradient="full")
    ours = value_and_grad(lambda e: ranked_list_loss(e, labels, weight_gradient=True, **kwargs), emb)
    constant = value_and_grad(lambda e: ranked_list_loss(e, labels, **kwargs), emb)
    assert abs(float(ours[0] - theirs[0])) <= 1e-6 * abs(float(theirs[0]))
    assert float((ours[1] - theirs[1]).norm()) <= 1e-6 * float(theirs[1].norm())
    assert float((constant[1] - theirs[1]).norm()) > 0.1 * float(theirs[1].norm())


def test_the_option_by_name_module_preset_and_config():
    assert RankedListLoss(weight_gradient=True).options["weight_gradient"] is True
    assert RankedListLoss.from_preset("cvpr2019", weight_gradient=True).options["weight_gradient"] is True
    assert loss_params("rll", None, {"weight_gradient": True})["weight_gradient"] is True
    assert build_loss("rll", embedding_dim=4, num_classes=2, weight_gradient=True).options["weight_gradient"] is True
    assert "weight_gradient=False" in repr(RankedListLoss())
    for bad in ["yes", 1, None]:
        with pytest.raises(ValueError, match=f"weight_gradient must be true or false, got {bad!r}"):
            ranked_list_loss(*batch(n=4), weight_gradient=bad)


def test_compiled_elementwise_kernel_gives_the_same_numbers():
    emb, labels = batch(n=40, seed=20, dtype=torch.float32)
    kwargs = dict(gradient="full", weight_gradient=True, pos_temperature=2.0)
    eager = value_and_grad(lambda e: ranked_list_loss(e, labels, **kwargs), emb)
    fused = value_and_grad(lambda e: ranked_list_loss(e, labels, compile=True, **kwargs), emb)
    torch.testing.assert_close(eager, fused, atol=1e-5, rtol=1e-5)


def test_the_option_in_a_recipe():
    from pathlib import Path

    from ranklist.training import load_config

    recipe = Path(__file__).parents[2] / "configs" / "demo.yaml"
    assert load_config(recipe, ["loss.params.weight_gradient=true"]).loss.params == {"weight_gradient": True}
    with pytest.raises(ValueError, match="weight_gradient must be true or false, got 'maybe'"):
        load_config(recipe, ["loss.params.weight_gradient=maybe"])
