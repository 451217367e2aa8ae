"""Where the paper's datasets and weights come from, and how each download is checked.

`ranklist data fetch NAME` (data/fetch.py) reads this registry. Every checksum says where it comes
from (`Digest.source`): "published" by the host, or "recorded" by other code that downloads the
same file; None where neither exists, and then the fetch prints the SHA-256 it computed and asks
for `--sha256` (or `--unverified`, which says so in FETCHED.json). No checksum here was computed by
this project: there is no network where it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Digest:
    """A published (or recorded) checksum of a downloaded file."""

    algorithm: Literal["md5", "sha256", "sha256-prefix"]  # sha256-prefix: the leading hex digits of the SHA-256
    value: str
    source: str  # who published or recorded it


@dataclass(frozen=True)
class Archive:
    """One file of a download source: its name, official URL and checksum."""

    file: str  # its file name: ROOT/downloads/<file>, and what RANKLIST_MIRROR is asked for
    url: str | None  # the official URL; None: downloaded by hand (Source.manual says how)
    digest: Digest | None


@dataclass(frozen=True)
class Source:
    """A dataset (extracted, converted where needed, checked with its reader's published counts) or
    a weights file (kept as it is, checked by loading it)."""

    archives: tuple[Archive, ...]
    target: str  # what ROOT/<target> becomes (the folder the recipes' data.root / model.weights name)
    default_root: str
    inner: str = ""  # the folder inside the extracted archives that becomes the target ("" = all of it)
    dataset: str | None = None  # the reader (data/benchmarks.py) whose published counts are checked
    backbone: str | None = None  # weights: the backbone (models' BACKBONES) they are checked by loading into
    convert: str | None = None  # a layout conversion of data/fetch.py's CONVERSIONS
    manual: str | None = None  # what to download by hand, and where to put it
    note: str = ""


CUB_MD5 = Digest(
    "md5",
    "97eceeb196236b17998738112f37df78",
    "recorded: pytorch-metric-learning's earlier CUB200 downloader and the widely copied torchvision-style Cub2011 "
    "dataset classes check this MD5 of CUB_200_2011.tgz",
)
SOP_MD5 = Digest(
    "md5",
    "7f73d41a2f44250d4779881525aea32e",
    "recorded: pytorch-metric-learning's earlier StanfordOnlineProducts downloader checks this MD5 of "
    "Stanford_Online_Products.zip (the copy once served from cs.stanford.edu)",
)
BN_INCEPTION_PREFIX = Digest(
    "sha256-prefix",
    "239d2248",
    "recorded: the 8 hex digits of the published file name, torch.hub's convention for the leading "
    "digits of the file's SHA-256 (load_state_dict_from_url(check_hash=True) checks the same); "
    "32 bits: catches a damaged or different file, not a crafted one",
)

INSHOP_MANUAL = (
    "In-shop Clothes (DeepFashion) is shared from a Google Drive folder that needs a browser: open "
    "https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html, follow its download link, "
    "and from the folder "
    "'In-shop Clothes Retrieval Benchmark' download Img/img.zip and Eval/list_eval_partition.txt into ROOT/downloads/ "
    "(no checksum is published: rerun with --sha256 FILE=HEX for each, from a copy you trust, or --unverified)"
)

SOURCES: dict[str, Source] = {
    "cub200": Source(
        (Archive("CUB_200_2011.tgz", "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz", CUB_MD5),),
        target="CUB_200_2011",
        default_root="data",
        inner="CUB_200_2011",
        dataset="cub200",
        note="Caltech's data repository (the URL pytorch-metric-learning 2.8 downloads)",
    ),
    "cars196": Source(
        # The Stanford hosts of car_ims.tgz / cars_annos.mat no longer answer; pytorch-metric-learning 2.8
        # downloads this Kaggle copy (the same 16,185 images and 196 classes, one folder per class).
        (
            Archive(
                "stanford-car-dataset-by-classes-folder.zip",
                "https://www.kaggle.com/api/v1/datasets/download/jutrera/stanford-car-dataset-by-classes-folder",
                None,
            ),
        ),
        target="CARS196",
        default_root="data",
        dataset="cars196",
        convert="cars196_from_class_folders",
        note="a Kaggle copy (the Stanford URLs are dead); no checksum is published or recorded for it",
    ),
    "sop": Source(
        (
            Archive(
                "Stanford_Online_Products.zip",
                "https://drive.usercontent.google.com/download?id=1TclrpQOF_ullUP99wk_gjGN8pKvtErG8&export=download&confirm=t",
                SOP_MD5,
            ),
        ),
        target="Stanford_Online_Products",
        default_root="data",
        inner="Stanford_Online_Products",
        dataset="sop",
        note="the authors' Google Drive copy, linked from their repository (rksltnl/Deep-Metric-Learning-CVPR16)",
    ),
    "inshop": Source(
        (Archive("img.zip", None, None), Archive("list_eval_partition.txt", None, None)),
        target="InShop",
        default_root="data",
        dataset="inshop",
        manual=INSHOP_MANUAL,
    ),
    "bn_inception": Source(
        (
            Archive(
                "bn_inception-239d2248.pth",
                "http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-239d2248.pth",
                BN_INCEPTION_PREFIX,
            ),
        ),
        target="bn_inception-239d2248.pth",
        default_root="weights",
        backbone="bn_inception",
        note="Cadene's pretrained-models.pytorch `bninception` ImageNet weights "
        "(the file the recipes' model.weights names)",
    ),
}


def source(name: str) -> Source:
    """The registered download source `name`; a ValueError naming the choices otherwise."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; choose one of {sorted(SOURCES)}")
    return SOURCES[name]
