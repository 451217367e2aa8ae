"""Ranked List Loss against a slow float64 reference written from the formulas, plus properties."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from ranklist import PRESETS, RankedListLoss, ranked_list_loss
from tests.losses.reference_rll import reference_ranked_list_loss

REDUCTIONS = ["mean", "sum", "official", "none"]
GRADIENTS = ["query", "full"]


def batch(n=24, d=6, classes=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, d, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (n,), generator=g)
    return emb, labels


def value_and_grad(fn, emb, **kwargs):
    emb = emb.detach().clone().requires_grad_(True)
    out = fn(emb, **kwargs)
    if out.dim() == 0:
        out.backward()
    else:  # a non-uniform upstream gradient for reduction "none"
        (out * torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype)).sum().backward()
    return out.detach(), emb.grad


def assert_matches_reference(emb, labels, atol=1e-9, **kwargs):
    got, got_grad = value_and_grad(lambda e, **k: ranked_list_loss(e, labels, **k), emb, **kwargs)
    want, want_grad = value_and_grad(lambda e, **k: reference_ranked_list_loss(e, labels, **k), emb, **kwargs)
    torch.testing.assert_close(got, want, atol=atol, rtol=1e-7)
    torch.testing.assert_close(got_grad, want_grad, atol=atol, rtol=1e-6)


@pytest.mark.parametrize("reduction,gradient", list(itertools.product(REDUCTIONS, GRADIENTS)))
@pytest.mark.parametrize("classes", [2, 12])
def test_matches_reference(reduction, gradient, classes):
    emb, labels = batch(classes=classes, seed=classes)
    assert_matches_reference(emb, labels, reduction=reduction, gradient=gradient)


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_matches_reference_with_positive_weighting_and_simpler_boundaries(gradient):
    emb, labels = batch(seed=3)
    for alpha, margin in [(None, 0.4), (1.0, 0.1), (1.4, 1.4)]:
        assert_matches_reference(
            emb,
            labels,
            alpha=alpha,
            margin=margin,
            pos_temperature=3.0,
            neg_temperature=7.0,
            imbalance=0.3,
            reduction="official",
            gradient=gradient,
        )


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_pairs_at_distance_zero_and_ties(gradient):
    emb, labels = batch(n=10, seed=4)
    # Exact duplicates: same class (a positive at d = 0, never mined) and other class (a negative
    # at d = 0, mined: strict masks, not "value > 0"). Repeated rows also make tied distances.
    emb = torch.cat([emb, emb[:3], emb[:3] * 2.0])
    labels = torch.cat([labels, labels[:3], labels[:3] + 100])
    for reduction in REDUCTIONS:
        assert_matches_reference(emb, labels, reduction=reduction, gradient=gradient, atol=1e-7)


def test_negative_at_distance_zero_is_mined():
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    loss = ranked_list_loss(emb, torch.tensor([0, 1]), reduction="none", alpha=1.2, imbalance=0.5)
    torch.testing.assert_close(loss, torch.tensor([0.6, 0.6], dtype=torch.float64))


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_empty_sets_and_single_query(gradient):
    emb, _ = batch(n=8, seed=5)
    singletons = torch.arange(8)  # every positive set is empty
    one_class = torch.zeros(8, dtype=torch.long)  # every negative set is empty
    for labels in (singletons, one_class):
        for reduction in REDUCTIONS:
            assert_matches_reference(emb, labels, reduction=reduction, gradient=gradient)
    single, grad = value_and_grad(lambda e: ranked_list_loss(e, torch.tensor([3]), gradient=gradient), emb[:1])
    assert single.item() == 0.0 and torch.count_nonzero(grad) == 0


def test_nothing_mined_gives_zero_loss_and_gradient_for_official():
    emb = torch.eye(4, dtype=torch.float64)  # all pairs at distance sqrt(2) > alpha = 1.2
    value, grad = value_and_grad(lambda e: ranked_list_loss(e, torch.tensor([0, 1, 2, 3]), reduction="official"), emb)
    assert value.item() == 0.0 and torch.count_nonzero(grad) == 0


def test_gradcheck():
    # The closed form treats weights as constants and ("query") the gallery as constant, so finite
    # differences check it where those hold: zero temperatures (uniform weights), and for "query"
    # a separate, constant reference set. (Everything else is checked against the reference.)
    emb, labels = batch(n=9, d=4, classes=3, seed=6)
    ref, ref_labels = batch(n=7, d=4, classes=3, seed=60)
    for reduction in ["mean", "sum", "none"]:
        assert torch.autograd.gradcheck(
            lambda e: ranked_list_loss(e, labels, reduction=reduction, gradient="full", neg_temperature=0.0),
            emb.clone().requires_grad_(True),
        )
        assert torch.autograd.gradcheck(
            lambda e: ranked_list_loss(
                e,
                labels,
                ref_emb=ref,
                ref_labels=ref_labels,
                reduction=reduction,
                gradient="query",
                neg_temperature=0.0,
            ),
            emb.clone().requires_grad_(True),
        )


def test_weight_sums_match_reference():
    emb, labels = batch(seed=7)
    _, sums = ranked_list_loss(emb, labels, pos_temperature=2.0, return_weight_sums=True)
    _, want = reference_ranked_list_loss(emb, labels, pos_temperature=2.0, return_weight_sums=True)
    torch.testing.assert_close(sums, want)


def test_blocks_give_the_same_result():
    emb, labels = batch(n=40, seed=8)
    for gradient, reduction in itertools.product(GRADIENTS, REDUCTIONS):
        whole = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient=gradient, reduction=reduction), emb)
        blocked = value_and_grad(
            lambda e: ranked_list_loss(e, labels, gradient=gradient, reduction=reduction, block_size=7),
            emb,
        )
        torch.testing.assert_close(whole, blocked)


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_chunked_reference_calls_equal_the_single_batch_call(gradient):
    emb, labels = batch(n=30, seed=9)
    whole, whole_grad = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient=gradient, reduction="sum"), emb)
    x = emb.detach().clone().requires_grad_(True)
    total = 0.0
    for rows in torch.arange(30).split(11):
        # Each chunk ranks its queries against the whole batch; self_index names their own rows.
        total = total + ranked_list_loss(
            x[rows],
            labels[rows],
            ref_emb=x,
            ref_labels=labels,
            self_index=rows,
            gradient=gradient,
            reduction="sum",
        )
    total.backward()
    torch.testing.assert_close(total.detach(), whole)
    torch.testing.assert_close(x.grad, whole_grad)


def test_reference_set_without_self_index_excludes_nothing():
    emb, labels = batch(n=12, seed=10)
    ref, ref_labels = batch(n=20, seed=11)
    for gradient in GRADIENTS:
        got = ranked_list_loss(emb, labels, ref_emb=ref, ref_labels=ref_labels, gradient=gradient)
        want = reference_ranked_list_loss(emb, labels, ref_emb=ref, ref_labels=ref_labels, gradient=gradient)
        torch.testing.assert_close(got, want)
    # "query": references never receive gradient; "full": they do, as the reference says.
    r = ref.clone().requires_grad_(True)
    ranked_list_loss(emb.requires_grad_(True), labels, ref_emb=r, ref_labels=ref_labels).backward()
    assert r.grad is None and emb.grad is not None
    r_full = ref.clone().requires_grad_(True)
    r_ref = ref.clone().requires_grad_(True)
    ranked_list_loss(emb, labels, ref_emb=r_full, ref_labels=ref_labels, gradient="full").backward()
    reference_ranked_list_loss(emb, labels, ref_emb=r_ref, ref_labels=ref_labels, gradient="full").backward()
    torch.testing.assert_close(r_full.grad, r_ref.grad)


def test_permutation_invariance():
    emb, labels = batch(seed=12)
    perm = torch.randperm(len(emb), generator=torch.Generator().manual_seed(0))
    for gradient in GRADIENTS:
        value, grad = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient=gradient), emb)
        p_value, p_grad = value_and_grad(lambda e: ranked_list_loss(e, labels[perm], gradient=gradient), emb[perm])
        torch.testing.assert_close(value, p_value)
        torch.testing.assert_close(grad[perm], p_grad)


def test_zero_temperature_is_the_plain_mean():
    emb, labels = batch(seed=13)
    f = F.normalize(emb, dim=1)
    d = torch.cdist(f, f)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(f), dtype=torch.bool) & (d > 0.8)
    neg = ~same & (d < 1.2)
    loss_p = torch.where(pos, d - 0.8, 0).sum(1) / pos.sum(1).clamp_min(1)
    loss_n = torch.where(neg, 1.2 - d, 0).sum(1) / neg.sum(1).clamp_min(1)
    got = ranked_list_loss(emb, labels, neg_temperature=0.0, reduction="none")
    torch.testing.assert_close(got, 0.5 * loss_p + 0.5 * loss_n)


def test_large_temperature_is_hardest_negative_mining():
    emb, labels = batch(seed=14)
    f = F.normalize(emb, dim=1)
    d = torch.cdist(f, f)
    neg = labels[:, None] != labels[None, :]
    hardest = torch.where(neg, d, torch.inf).amin(dim=1)
    want = torch.where(hardest < 1.2, 1.2 - hardest, 0.0)
    got = ranked_list_loss(emb, labels, neg_temperature=1e5, imbalance=1.0, reduction="none")
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_half_precision_is_finite_and_close_to_float32(dtype):
    emb, labels = batch(n=64, d=16, classes=8, seed=15, dtype=torch.float32)
    for temperature in (10.0, 1e4):
        want = ranked_list_loss(emb, labels, neg_temperature=temperature, pos_temperature=temperature)
        x = emb.to(dtype).requires_grad_(True)
        got = ranked_list_loss(x, labels, neg_temperature=temperature, pos_temperature=temperature)
        got.backward()
        assert got.dtype == torch.float32 and x.grad.dtype == dtype
        assert torch.isfinite(got) and torch.isfinite(x.grad).all()
        tol = {torch.float16: 5e-3, torch.bfloat16: 3e-2, torch.float32: 0.0}[dtype]
        # Inputs are rounded to `dtype`; the loss computed from them moves by about that much.
        if temperature == 10.0:
            torch.testing.assert_close(got, want, atol=tol * 5, rtol=tol * 5)


def test_huge_temperatures_stay_finite_in_official_reduction():
    emb, labels = batch(seed=16, dtype=torch.float32)
    x = emb.requires_grad_(True)
    loss, sums = ranked_list_loss(
        x,
        labels,
        neg_temperature=1e6,
        pos_temperature=1e6,
        reduction="official",
        return_weight_sums=True,
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert torch.isinf(sums).any()  # the raw sums overflow even float64; the loss does not


def test_integer_label_dtypes_and_device_follow_inputs():
    emb, labels = batch(seed=17, dtype=torch.float32)
    want = ranked_list_loss(emb, labels)
    for dtype in (torch.int8, torch.uint8, torch.int16, torch.int32):
        torch.testing.assert_close(ranked_list_loss(emb, labels.to(dtype)), want)
    assert ranked_list_loss(emb, labels).device == emb.device


@pytest.mark.heavy  # torch.compile builds the kernel: seconds
def test_compiled_elementwise_kernel_gives_the_same_numbers():
    emb, labels = batch(n=40, seed=18, dtype=torch.float32)
    for gradient in GRADIENTS:
        eager = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient=gradient), emb)
        fused = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient=gradient, compile=True), emb)
        torch.testing.assert_close(eager, fused, atol=1e-5, rtol=1e-5)


def test_module_and_presets():
    emb, labels = batch(seed=19)
    loss_fn = RankedListLoss(
        margin=0.4,
        alpha=1.2,
        neg_temperature=10.0,
        pos_temperature=0.0,
        imbalance=0.5,
        reduction="mean",
        gradient="query",
    )
    torch.testing.assert_close(loss_fn(emb, labels), ranked_list_loss(emb, labels))
    for name, options in PRESETS.items():
        got = RankedListLoss.from_preset(name)(emb, labels)
        torch.testing.assert_close(got, reference_ranked_list_loss(emb, labels, **options))
    assert RankedListLoss.from_preset("tpami2021_code", margin=0.2).options["margin"] == 0.2
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        RankedListLoss.from_preset("nope")


@pytest.mark.parametrize("labels_kind", ["few", "many"])
def test_forward_agrees_with_pytorch_metric_learning(labels_kind):
    from pytorch_metric_learning.losses import RankedListLoss as PmlRankedListLoss
    from pytorch_metric_learning.reducers import DoNothingReducer

    emb, labels = batch(n=48, d=8, classes=4 if labels_kind == "few" else 16, seed=20)
    for alpha, tn, tp in [(1.2, 10.0, 0.0), (None, 5.0, 2.0)]:
        pml = PmlRankedListLoss(margin=0.4, Tn=tn, Tp=tp, alpha=alpha, imbalance=0.5, reducer=DoNothingReducer())
        theirs = pml(emb, labels)["loss"]["losses"]
        ours = ranked_list_loss(emb, labels, alpha=alpha, neg_temperature=tn, pos_temperature=tp, reduction="none")
        # pml adds 1e-5 per column (N columns) to each weight sum; mined weights are >= 1, so its
        # value is ours shrunk by at most a relative N * 1e-5. No pair here is at d = 0.
        bias = 1e-5 * len(emb)
        assert torch.all(theirs <= ours + 1e-12)
        assert torch.all(ours - theirs <= bias * ours + 1e-12)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(margin=-0.1), "margin must be a finite number >= 0.0, got -0.1"),
        (dict(neg_temperature=-1), "neg_temperature must be a finite number >= 0.0, got -1.0"),
        (dict(pos_temperature=float("nan")), "pos_temperature must be a finite number"),
        (dict(imbalance=1.5), r"imbalance must be a finite number in \[0.0, 1.0\], got 1.5"),
        (dict(reduction="avg"), "reduction must be one of .* got 'avg'"),
        (dict(gradient="both"), "gradient must be one of .* got 'both'"),
        (dict(alpha=0.3, margin=0.4), "alpha - margin must be >= 0"),
        (dict(block_size=0), "block_size must be a positive integer or None, got 0"),
        # issue 28: the functional API names the parameter whatever the value's type
        (dict(margin="abc"), "margin must be a finite number >= 0.0, got 'abc'"),
        (dict(margin=None), "margin must be a finite number >= 0.0, got None"),
        (dict(alpha="1.2"), "alpha must be a finite number >= 0.0, got '1.2'"),
        (dict(neg_temperature=[10]), r"neg_temperature must be a finite number >= 0.0, got \[10\]"),
        (dict(imbalance=True), r"imbalance must be a finite number in \[0.0, 1.0\], got True"),
        (dict(block_size=2.5), "block_size must be a positive integer or None, got 2.5"),
        (dict(block_size="8"), "block_size must be a positive integer or None, got '8'"),
        (dict(compile="yes"), "compile must be true, false or None, got 'yes'"),
    ],
)
def test_bad_hyper_parameters_name_the_value(kwargs, message):
    emb, labels = batch(n=4)
    with pytest.raises(ValueError, match=message):
        ranked_list_loss(emb, labels, **kwargs)
    with pytest.raises(ValueError, match=message):  # the module refuses it when built
        RankedListLoss(**kwargs)


def test_bad_inputs_name_the_value():
    emb, labels = batch(n=6)
    with pytest.raises(ValueError, match="labels has 5 entries but embeddings has 6 rows"):
        ranked_list_loss(emb, labels[:5])
    with pytest.raises(ValueError, match="labels must hold integers, got dtype torch.float32"):
        ranked_list_loss(emb, labels.float())
    with pytest.raises(ValueError, match=r"labels must be a 1-D integer tensor, got \(6, 1\)"):
        ranked_list_loss(emb, labels[:, None])
    with pytest.raises(ValueError, match=r"embeddings must be a 2-D float tensor \[N, D\], got \(6,\)"):
        ranked_list_loss(emb[:, 0], labels)
    bad = emb.clone()
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match=r"embeddings has non-finite values \(rows \[2\]"):
        ranked_list_loss(bad, labels)
    with pytest.raises(ValueError, match="ref_emb has dimension 3 but embeddings has 6"):
        ranked_list_loss(emb, labels, ref_emb=emb[:, :3], ref_labels=labels)
    with pytest.raises(ValueError, match="ref_emb needs ref_labels"):
        ranked_list_loss(emb, labels, ref_emb=emb)
    with pytest.raises(ValueError, match=r"self_index\[0\] = 6 is neither -1 nor a row of ref_emb in \[0, 6\)"):
        ranked_list_loss(emb, labels, ref_emb=emb, ref_labels=labels, self_index=labels * 0 + 6)
    with pytest.raises(ValueError, match="ref_labels and self_index need ref_emb"):
        ranked_list_loss(emb, labels, self_index=torch.arange(6))


def test_self_index_at_a_row_of_another_class_names_the_query():
    emb = torch.randn(4, 3)
    labels = torch.tensor([0, 0, 1, 1])
    index = torch.tensor([0, 1, 0, 3])  # query 2 (class 1) claims row 0 (class 0)
    with pytest.raises(ValueError, match=r"self_index\[2\] = 0 points at a row of class 0, but query 2 has class 1"):
        ranked_list_loss(emb, labels, ref_emb=emb, ref_labels=labels, self_index=index)
    with pytest.raises(ValueError, match=r"self_index\[1\] = -2 is neither -1"):
        ranked_list_loss(emb, labels, ref_emb=emb, ref_labels=labels, self_index=torch.tensor([0, -2, 2, 3]))
    ranked_list_loss(emb, labels, ref_emb=emb, ref_labels=labels, self_index=torch.tensor([0, -1, 2, -1]))


def near_duplicate_batch(seed, gap, n=24, d=16):
    """A float32 batch with an exact duplicate and near duplicates (rows `gap` apart) across classes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    labels = torch.arange(n) % 6
    x[1] = x[0]
    x[3] = x[2] + gap * torch.randn(d, generator=g)
    x[7] = x[1] + gap * torch.randn(d, generator=g)
    x[12] = x[6] + gap * torch.randn(d, generator=g)  # same class: a positive pair at d ~ 0
    return x, labels


def relative_error(got, want):
    return float((got.double() - want).norm() / want.norm())


@pytest.mark.parametrize("gap", [1e-2, 1e-3, 1e-4, 1e-6])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(gradient="query"),
        dict(gradient="full"),
        dict(gradient="full", reduction="official"),
        dict(gradient="query", alpha=0.4, reduction="none"),  # pb = 0
        dict(gradient="query", block_size=5, compile=True),
    ],
)
def test_float32_near_duplicates_match_float64_reference(gap, kwargs):
    # Issue 13: sqrt(2 - 2 cos) was off by ~3e-4 in value and up to ~0.5 in the gradient here.
    opts = {k: v for k, v in kwargs.items() if k not in ("block_size", "compile")}
    for seed in range(3):
        x, labels = near_duplicate_batch(seed, gap)
        got, got_grad = value_and_grad(lambda e: ranked_list_loss(e, labels, **kwargs), x)
        want, want_grad = value_and_grad(lambda e: reference_ranked_list_loss(e, labels, **opts), x.double())
        assert relative_error(got, want) <= 1e-5
        assert relative_error(got_grad, want_grad) <= 1e-5


def test_float32_near_duplicates_against_a_reference_set():
    x, labels = near_duplicate_batch(4, 1e-4)
    refs, ref_labels = x.flip(0).clone(), labels.flip(0).clone()
    got, got_grad = value_and_grad(
        lambda e: ranked_list_loss(e, labels, ref_emb=refs, ref_labels=ref_labels, gradient="full"), x
    )
    want, want_grad = value_and_grad(
        lambda e: reference_ranked_list_loss(e, labels, ref_emb=refs.double(), ref_labels=ref_labels, gradient="full"),
        x.double(),
    )
    assert relative_error(got, want) <= 1e-5 and relative_error(got_grad, want_grad) <= 1e-5


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_float32_rows_of_extreme_scale_give_the_unscaled_loss_and_gradient(scale):
    # Issue 13 hostile inputs: squared norms over/underflowed in float32 and the loss went silently wrong.
    emb, labels = batch(n=16, d=8, seed=21, dtype=torch.float32)
    want, want_grad = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient="full"), emb)
    got, got_grad = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient="full"), emb * scale)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    torch.testing.assert_close(got_grad * scale, want_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gradient", ["query", "full"])
def test_all_zero_rows_get_no_gradient_and_training_goes_on(gradient):
    """A network can output an all-zero row; it has no direction: the loss stays finite, the row
    gets exactly zero gradient (not F.normalize's 1e12) and the others their usual finite one."""
    emb, labels = batch(n=6, dtype=torch.float32)
    emb[4] = 0.0
    emb.requires_grad_(True)
    loss = ranked_list_loss(emb, labels, gradient=gradient)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    assert torch.equal(emb.grad[4], torch.zeros_like(emb.grad[4])) and emb.grad.abs().max() < 10
    ref = emb.detach().clone().requires_grad_(True)
    value = ranked_list_loss(
        ref[:3], labels[:3], ref_emb=ref, ref_labels=labels, self_index=torch.arange(3), gradient=gradient
    )
    assert torch.isfinite(value)


def test_near_duplicates_of_tiny_rows_keep_their_direction():
    x, labels = near_duplicate_batch(5, 1e-3)
    tiny = x * 1e-30  # float32; the reference rescales it in float64, where the norm does not underflow
    got, got_grad = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient="full"), tiny)
    want, want_grad = value_and_grad(
        lambda e: reference_ranked_list_loss(e * 1e30, labels, gradient="full"), tiny.double()
    )
    assert relative_error(got, want) <= 1e-5
    assert relative_error(got_grad, want_grad) <= 1e-5


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_labels_beyond_int32_are_the_same_classes(gradient):
    # The fused pass compares int32 labels; larger ones (hashed ids) are renumbered first.
    emb, labels = batch(n=20, classes=4, seed=23)
    big = labels * (1 << 40) - (1 << 41)  # classes far outside int32, some negative
    want = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient=gradient, reduction="none"), emb)
    got = value_and_grad(lambda e: ranked_list_loss(e, big, gradient=gradient, reduction="none"), emb)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert_matches_reference(emb, big, gradient=gradient)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_float64_rows_of_extreme_scale_give_the_unscaled_loss_and_gradient(scale):
    # The normalisation's closed-form backward with float64 rows scaled by their largest entry.
    emb, labels = batch(n=16, d=8, seed=22)
    want, want_grad = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient="full"), emb)
    got, got_grad = value_and_grad(lambda e: ranked_list_loss(e, labels, gradient="full"), emb * scale)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(got_grad * scale, want_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.heavy  # 1,100 queries against 8,192 references, twice
def test_default_blocks_of_a_large_reference_set_give_the_single_block_result():
    # At large M the default block keeps at least 1,024 rows; it must agree with one block.
    g = torch.Generator().manual_seed(24)
    emb, labels = torch.randn(1100, 8, generator=g), torch.randint(0, 300, (1100,), generator=g)
    refs, ref_labels = torch.randn(8192, 8, generator=g), torch.randint(0, 300, (8192,), generator=g)
    kwargs = dict(ref_emb=refs, ref_labels=ref_labels, gradient="full", reduction="official", compile=False)
    whole = value_and_grad(lambda e: ranked_list_loss(e, labels, block_size=1100, **kwargs), emb)
    blocked = value_and_grad(lambda e: ranked_list_loss(e, labels, **kwargs), emb)
    torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-7)
