"""Layout conversions of fetched datasets into the layouts the readers know (data/benchmarks.py).

CARS196: the Stanford hosts of car_ims.tgz and cars_annos.mat no longer answer; the copy that
pytorch-metric-learning 2.8 downloads (Kaggle, "stanford-car-dataset-by-classes-folder") holds the
same 16,185 images in one folder per class and split (car_data/car_data/{train,test}/<class>/),
with anno_train.csv / anno_test.csv (file, x1, y1, x2, y2, class id 1-196) and names.csv (class
names in id order). The conversion renames car_data/car_data/ to car_ims/ (the reader's folder; one
rename, the class folders kept inside) and writes the cars_annos.mat the reader expects
(relative_im_path car_ims/<split>/<class>/<file>, class, bbox, the classification split as `test`,
class_names).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ranklist.errors import UserError


def _rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise UserError(f"CARS196 copy lacks {path.name} (expected at {path})")
    return [line.strip().split(",") for line in path.read_text().splitlines() if line.strip()]


def cars196_from_class_folders(folder: Path) -> None:
    """Write folder/cars_annos.mat for the class-folder copy in `folder` (see the module docstring)."""
    from scipy.io import savemat

    names = (
        [line.strip() for line in (folder / "names.csv").read_text().splitlines() if line.strip()]
        if (folder / "names.csv").is_file()
        else []
    )
    if len(names) != 196:
        raise UserError(f"{folder / 'names.csv'}: expected the 196 CARS196 class names, found {len(names)}")
    dtype = [
        ("relative_im_path", "O"),
        ("bbox_x1", "O"),
        ("bbox_y1", "O"),
        ("bbox_x2", "O"),
        ("bbox_y2", "O"),
        ("class", "O"),
        ("test", "O"),
    ]
    rows = []
    for split, is_test in (("train", 0), ("test", 1)):
        for number, row in enumerate(_rows(folder / f"anno_{split}.csv"), start=1):
            if len(row) < 6 or not row[-1].strip().isdigit() or not 1 <= int(row[-1]) <= 196:
                raise UserError(
                    f"{folder / f'anno_{split}.csv'}: line {number} is not 'file,x1,y1,x2,y2,class' "
                    f"with a class in 1..196: {row}"
                )
            label = int(row[-1])
            rel = f"car_ims/{split}/{names[label - 1].replace('/', '-')}/{row[0]}"
            rows.append((rel, *(np.array([[int(v)]]) for v in row[1:5]), np.array([[label]]), np.array([[is_test]])))
    images = folder / "car_data" / "car_data"
    if not images.is_dir():
        raise UserError(f"CARS196 copy lacks its image folder car_data/car_data/ (in {folder})")
    images.rename(folder / "car_ims")
    annotations = np.array([rows], dtype=dtype)
    savemat(folder / "cars_annos.mat", {"annotations": annotations, "class_names": np.array([names], dtype=object)})


CONVERSIONS: dict[str, Callable[[Path], None]] = {"cars196_from_class_folders": cars196_from_class_folders}
