import pytest
import torch
from torch.utils.data import TensorDataset

from ranklist.evaluation import Evaluator, embed_dataset, nmi, retrieval_metrics
from ranklist.models import build_model, evaluation_embedding


def tiny_data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 16, 16, generator=g), torch.arange(n) % 8)


def test_embed_dataset_is_batched_no_grad_and_restores_train_mode():
    model = build_model("small_cnn", pretrained=False, embedding_dim=6, image_size=16).train()
    outputs, labels = embed_dataset(model, tiny_data(), batch_size=7, progress=False)
    assert model.training
    assert set(outputs) == {"L", "M", "H"} and outputs["H"].shape == (40, 6)
    assert not outputs["H"].requires_grad
    assert torch.equal(labels, torch.arange(40) % 8)
    model.eval()
    with torch.no_grad():
        direct = model(tiny_data().tensors[0])
    torch.testing.assert_close(outputs["L"], direct["L"], atol=1e-5, rtol=1e-5)


def test_evaluator_scores_each_level_and_the_concatenation():
    model = build_model("small_cnn", pretrained=False, embedding_dim=6, image_size=16)
    data = tiny_data()
    result = Evaluator(ks=(1, 2), progress=False).evaluate(model, data)
    assert set(result) == {"L", "M", "H", "concat"}
    outputs, labels = embed_dataset(model, data, progress=False)
    want = retrieval_metrics(evaluation_embedding(outputs), labels, ks=(1, 2))
    for key, value in want.items():
        assert result["concat"][key] == value
    assert result["concat"]["nmi"] == nmi(evaluation_embedding(outputs), labels)
    only_h = Evaluator(ks=(1,), progress=False, compute_nmi=False).evaluate(model, data, levels=["H"])
    assert set(only_h) == {"H"} and "nmi" not in only_h["H"]


def test_query_gallery_evaluation():
    model = build_model("small_cnn", pretrained=False, embedding_dim=6, image_size=16)
    result = Evaluator(ks=(1, 5), progress=False).evaluate(model, tiny_data(16, 1), gallery_dataset=tiny_data(40, 2))
    assert result["concat"]["num_queries"] == 16 and result["concat"]["num_excluded_queries"] == 0


class CountingDataset(torch.utils.data.Dataset):
    """Counts reads per item (each must be read once per call); can fail at one index."""

    def __init__(self, n=40, fail_at=None):
        self.data = tiny_data(n)
        self.reads = [0] * n
        self.fail_at = fail_at

    def __len__(self):
        return len(self.reads)

    def __getitem__(self, index):
        if index == self.fail_at:
            raise OSError(f"cannot read item {index}")
        self.reads[index] += 1
        return self.data[index]


def prefetch_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "ranklist-prefetch"]


def test_prefetched_embedding_is_bit_identical_reads_each_item_once_and_stops_its_thread():
    model = build_model("small_cnn", pretrained=False, embedding_dim=6, image_size=16)
    plain, plain_labels = embed_dataset(model, tiny_data(), batch_size=7, progress=False, prefetch=False)
    for _ in range(10):  # a thread per call: repeat to catch races and leaks
        data = CountingDataset()
        outputs, labels = embed_dataset(model, data, batch_size=7, progress=False, prefetch=True)
        assert data.reads == [1] * 40
        assert all(torch.equal(outputs[level], plain[level]) for level in plain) and torch.equal(labels, plain_labels)
        assert prefetch_threads() == []


def test_prefetched_embedding_stops_its_thread_on_errors():
    model = build_model("small_cnn", pretrained=False, embedding_dim=6, image_size=16).train()
    for _ in range(5):
        with pytest.raises(OSError, match="cannot read item 30"):
            embed_dataset(model, CountingDataset(fail_at=30), batch_size=4, progress=False, prefetch=True)
        assert prefetch_threads() == [] and model.training

    class Broken(torch.nn.Module):
        def forward(self, images):
            raise RuntimeError("model failed")

    for _ in range(5):
        with pytest.raises(RuntimeError, match="model failed"):
            embed_dataset(Broken(), CountingDataset(), batch_size=4, progress=False, prefetch=True)
        assert prefetch_threads() == []


def test_bf16_evaluation_is_float32_and_close_to_fp32():
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", pretrained=True, embedding_dim=16, image_size=32).eval()
    data = TensorDataset(torch.randn(12, 3, 32, 32), torch.arange(12) % 3)
    exact, labels = embed_dataset(model, data, batch_size=5, progress=False)
    low, low_labels = embed_dataset(model, data, batch_size=5, progress=False, precision="bf16")
    assert torch.equal(labels, low_labels)
    for level in exact:
        assert low[level].dtype == torch.float32
        assert torch.nn.functional.cosine_similarity(exact[level], low[level]).min() > 0.99
    metrics = Evaluator(batch_size=5, progress=False, ks=(1,), precision="bf16").evaluate(model, data)
    assert set(metrics) == {"L", "M", "H", "concat"}
    with pytest.raises(ValueError, match="precision must be one of \\['fp32', 'bf16'\\], got 'fp16'"):
        embed_dataset(model, data, precision="fp16")


def test_several_models_embed_in_one_pass_as_each_would_alone():
    """A run's final test and its pretrained baseline share one read of the test images."""
    first = build_model("small_cnn", pretrained=False, embedding_dim=6, image_size=16)
    second = build_model("small_cnn", pretrained=False, embedding_dim=4, image_size=16, levels=["H"])
    queries, gallery = CountingDataset(16), CountingDataset(24)
    evaluator = Evaluator(batch_size=5, progress=False)
    together = evaluator.embed_models({"final": first, "baseline": second}, queries, gallery)
    assert queries.reads == [1] * 16 and gallery.reads == [1] * 24
    for name, model in (("final", first), ("baseline", second)):
        alone = evaluator.embed(model, queries, gallery)
        for got, want in zip(vars(together[name]).values(), vars(alone).values()):
            if isinstance(want, dict):
                assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
            else:
                assert torch.equal(got, want)
