import pytest
import torch

from ranklist.models import build_model
from ranklist.models.heads import HighHead, LowMidHead, paper_pool_grid


def reference_avg_pool(x: torch.Tensor, k: int = 5, s: int = 3) -> torch.Tensor:
    n = (x.shape[-1] - k) // s + 1
    out = torch.empty(*x.shape[:2], n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            out[:, :, i, j] = x[:, :, i * s : i * s + k, j * s : j * s + k].double().mean(dim=(2, 3))
    return out


def bn_eval(x: torch.Tensor, bn: torch.nn.Module) -> torch.Tensor:
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = bn.running_mean.double().view(shape), bn.running_var.double().view(shape)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.double().view(shape) + bn.bias.double().view(shape)


def randomise_bn(module: torch.nn.Module) -> None:
    for bn in module.modules():
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("side,grid", [(14, 4), (7, 1), (8, 2), (12, 3), (5, 1), (4, 1), (2, 1), (1, 1)])
def test_paper_pool_grid(side, grid):
    assert paper_pool_grid(side) == grid


def test_low_mid_head_matches_a_float64_reference():
    head = LowMidHead(6, 5, grid=4).eval()
    randomise_bn(head)
    x = torch.randn(3, 6, 14, 14)
    pooled = reference_avg_pool(x)
    torch.testing.assert_close(head.pool(x).double(), pooled)
    conv, bn1 = head.reduce[0], head.reduce[1]
    fc, bn2, embed = head.hidden[0], head.hidden[1], head.embed
    y = torch.relu(bn_eval(torch.einsum("oc,bchw->bohw", conv.weight.double()[:, :, 0, 0], pooled), bn1))
    y = torch.relu(bn_eval(y.flatten(1) @ fc.weight.double().T, bn2))
    expected = y @ embed.weight.double().T
    with torch.no_grad():
        torch.testing.assert_close(head(x).double(), expected, rtol=1e-4, atol=1e-4)
    assert embed.bias is None and fc.bias is None and conv.bias is None


def test_maps_too_small_or_of_another_size_are_pooled_adaptively():
    head = LowMidHead(4, 3, grid=1).eval()
    x = torch.randn(2, 4, 4, 4)  # 5x5 pooling cannot run on 4x4: global average
    torch.testing.assert_close(head.pool(x), x.mean(dim=(2, 3), keepdim=True))
    head = LowMidHead(4, 3, grid=2).eval()
    x = torch.randn(2, 4, 6, 10)  # non-square: 2x2 adaptive cells
    torch.testing.assert_close(head.pool(x)[:, :, 0, 0], x[:, :, :3, :5].mean(dim=(2, 3)))
    assert tuple(head(x).shape) == (2, 3)


def test_high_head_is_global_pool_then_linear():
    head = HighHead(6, 4)
    x = torch.randn(2, 6, 3, 5)
    expected = x.double().mean(dim=(2, 3)) @ head.embed.weight.double().T
    torch.testing.assert_close(head(x).double(), expected)
    assert head.embed.bias is None


@pytest.mark.parametrize("size", [16, 24, 33])
def test_small_images_build_and_run(size):
    model = build_model("small_cnn", pretrained=False, embedding_dim=8, image_size=size).train()
    out = model(torch.randn(2, 3, size, size))
    assert all(tuple(v.shape) == (2, 8) for v in out.values())
    # and images of another size than the model was built for still run (adaptive pooling)
    out = model.eval()(torch.randn(1, 3, size + 20, size + 4))
    assert all(tuple(v.shape) == (1, 8) for v in out.values())
