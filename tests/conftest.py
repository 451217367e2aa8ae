import pytest

from tests.data.fixtures import make_fashion_mnist


def pytest_collection_modifyitems(items):
    """A slow test is heavy too, so that `pytest -m "not heavy"` (the quick inner loop) leaves it out."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("heavy"):
            item.add_marker(pytest.mark.heavy)


def write_tiny_recipe(folder, train_extra: str = "", eval_extra: str = ""):
    """A YAML recipe training small_cnn on a tiny Fashion-MNIST-format set for a few iterations;
    `train_extra` / `eval_extra` add keys to those sections (", tensorboard: true")."""
    root = make_fashion_mnist(folder / "fm")
    path = folder / "tiny.yaml"
    path.write_text(f"""
name: tiny
data: {{name: fashion_mnist, root: {root}, image_size: 16, resize: 18, classes_per_batch: 2, samples_per_class: 3, \
val_fraction: 0.2}}
model: {{backbone: small_cnn, pretrained: false, embedding_dim: 8}}
optim: {{lr: 0.05, milestones: [4]}}
train: {{iterations: 6, val_every: 3, log_every: 1, checkpoint_every: 3, threads: 1{train_extra}}}
eval: {{ks: [1, 2], batch_size: 16, grid_queries: 3{eval_extra}}}
""")
    return path


@pytest.fixture
def tiny_recipe(tmp_path):
    return write_tiny_recipe(tmp_path)
