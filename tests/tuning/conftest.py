from pathlib import Path

import pytest

from tests.data.fixtures import make_fashion_mnist, write_image

pytest.importorskip("optuna")  # the `tune` extra (installed by `make test`)


def write_recipe(path: Path, data: str) -> Path:
    """A recipe training small_cnn for a few iterations on `data` (a YAML flow mapping's inside)."""
    path.write_text(f"""
name: tiny
data: {{{data}, image_size: 16, resize: 18, classes_per_batch: 2, samples_per_class: 3, val_fraction: 0.2}}
model: {{backbone: small_cnn, pretrained: false, embedding_dim: 8}}
optim: {{lr: 0.05}}
train: {{iterations: 2, val_every: 2, log_every: 1, checkpoint_every: 2, threads: 1}}
eval: {{ks: [1, 2], batch_size: 16, grid_queries: 3, nmi: false}}
""")
    return path


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    """Fashion-MNIST-format data (5 training classes, 8 items each) and a 2-iteration recipe."""
    return write_recipe(tmp_path / "tiny.yaml", f"name: fashion_mnist, root: {make_fashion_mnist(tmp_path / 'fm')}")


@pytest.fixture
def tiny_space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text("""
optim.lr: {type: float, low: 1e-3, high: 1e-1, log: true}
loss.params.margin: {type: float, low: 0.1, high: 1.0}
loss.params.gradient: {type: categorical, choices: [query, full]}
""")
    return path


def csv_without_test_images(root: Path) -> Path:
    """A CSV whose train rows have images and whose test rows name files that are not there."""
    rows = ["path,label,split"]
    for c in range(6):
        for k in range(4):
            write_image(root / f"train/{c}/{k}.png", 40 * c + k, size=20)
            rows.append(f"train/{c}/{k}.png,{c},train")
    rows += [f"test/{c}/{k}.png,{c},test" for c in range(6, 9) for k in range(3)]
    (root / "items.csv").write_text("\n".join(rows) + "\n")
    return root / "items.csv"
