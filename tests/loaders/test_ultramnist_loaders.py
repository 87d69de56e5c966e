"""UltraMNIST as the reference scripts read it (transmuteAI/ultramnist).

Their access pattern, reproduced (not their code): ``data_generator.py`` runs in a folder holding
``ultra-mnist/``, copies ``train.csv`` and ``sample_submission.csv`` (Kaggle's name; it stops without it)
into ``ultra-mnist_<S>/``, reads both with pandas, and for every row opens
``ultra-mnist/<split>/<row['id']>.jpeg`` with ``cv2.imread`` and writes an ``S×S`` copy under the same
name. ``train.py`` reads ``train.csv``'s ``id`` and ``digit_sum`` columns and its Dataset opens
``<root>/<id>.jpeg`` with ``cv2.imread(..., cv2.IMREAD_COLOR)`` then ``cv2.cvtColor(BGR2RGB)``, the label
going into ``torch.tensor(label)`` (so an integer); ``test.py`` does the same over
``sample_submission.csv``'s ``id`` / ``digit_sum``.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pandas as pd

RESIZED = 64


def _digit_sums(folder, split: str) -> dict[str, int]:
    digits = pd.read_csv(folder / f"{split}_digits.csv", dtype={"id": str})
    return digits.groupby("id")["digit"].sum().to_dict()


def test_data_generator_pattern(ultramnist):
    base = str(ultramnist.project)
    source_path = f"{base}/ultra-mnist"
    destination_path = f"{base}/ultra-mnist_{RESIZED}"
    assert os.path.exists(source_path) and not os.path.exists(destination_path)
    os.mkdir(destination_path)
    for split in ("train", "test"):
        os.mkdir(f"{destination_path}/{split}")
    for name in ("train.csv", "sample_submission.csv"):  # their shutil.copy2 of both files
        with open(f"{source_path}/{name}", "rb") as src, open(f"{destination_path}/{name}", "wb") as dst:
            dst.write(src.read())
    train = pd.read_csv(f"{destination_path}/train.csv")
    test = pd.read_csv(f"{destination_path}/sample_submission.csv")
    assert len(train) == 28 and len(test) == 28
    for split, table in (("train", train), ("test", test)):
        for i in range(len(table)):
            image = cv2.imread(f'{source_path}/{split}/{table.iloc[i]["id"]}.jpeg')
            assert image is not None and image.shape == (512, 512, 3)
            small = cv2.resize(image, (RESIZED, RESIZED), interpolation=cv2.INTER_AREA)
            assert cv2.imwrite(f'{destination_path}/{split}/{table.iloc[i]["id"]}.jpeg', small)


def test_train_and_test_dataset_pattern(ultramnist):
    folder = ultramnist.project / "ultra-mnist"
    root = str(folder)
    # train.py: X = train_df['id'], y = train_df['digit_sum']
    train_df = pd.read_csv(f"{root}/train.csv")
    sums = _digit_sums(folder, "train")
    for index in range(len(train_df)):
        label = train_df["digit_sum"].iloc[index]
        image = cv2.imread(f"{root}/train/{train_df['id'].iloc[index]}.jpeg", cv2.IMREAD_COLOR)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        assert image.shape == (512, 512, 3) and image.dtype == np.uint8
        assert isinstance(label, np.integer) and 0 <= label <= 27
        assert label == sums[train_df["id"].iloc[index]]  # the label is the sum of the digits drawn
    # test.py: X = sample_df['id'], y = sample_df['digit_sum'] (placeholders, integers)
    sample_df = pd.read_csv(f"{root}/sample_submission.csv")
    assert list(sample_df.columns) == ["id", "digit_sum"]
    assert sample_df["digit_sum"].dtype.kind == "i" and (sample_df["digit_sum"] == 0).all()
    truth = pd.read_csv(f"{root}/test.csv")
    assert list(sample_df["id"]) == list(truth["id"])  # the same test ids, in the same order
    test_sums = _digit_sums(folder, "test")
    assert [test_sums[i] for i in truth["id"]] == list(truth["digit_sum"])
    for index in range(len(sample_df)):
        image = cv2.imread(f"{root}/test/{sample_df['id'].iloc[index]}.jpeg", cv2.IMREAD_COLOR)
        assert image is not None and cv2.cvtColor(image, cv2.COLOR_BGR2RGB).shape == (512, 512, 3)
    # their test.py overwrites the placeholders with predictions and writes submission.csv
    sample_df["digit_sum"] = np.zeros(len(sample_df))
    sample_df["digit_sum"] = sample_df["digit_sum"].astype(int)
    assert list(sample_df.columns) == ["id", "digit_sum"]
