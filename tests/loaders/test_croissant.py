"""croissant.json of every output: valid with no error and no warning, and every RecordSet's first record
loads quickly (the NeurIPS datasets-track checker's rule) with its images decoded to the right size."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import mlcroissant as mlc
import pandas as pd
import pytest
from PIL import Image

import recipes
from methbuild.croissant import RAI_REQUIRED
from tests.loaders.conftest import METH_SCALES

FIRST_RECORD_SECONDS = 10.0
RAI_KEYS = ["rai:dataCollection", "rai:dataCollectionTimeframe", "rai:dataPreprocessingProtocol",
            "rai:dataAnnotationProtocol", "rai:dataBiases", "rai:dataLimitations", "rai:dataUseCases",
            "rai:personalSensitiveInformation"]


def text(v) -> str:
    return v.decode() if isinstance(v, bytes) else v


def load(path: Path) -> mlc.Dataset:
    """The dataset, after checking mlcroissant found no error (it raises) and no warning."""
    ds = mlc.Dataset(jsonld=path)
    assert not ds.metadata.ctx.issues.errors
    assert not ds.metadata.ctx.issues.warnings, ds.metadata.ctx.issues.warnings
    return ds


def first_records(ds: mlc.Dataset) -> dict[str, dict]:
    """The first record of every RecordSet, each within the checker's time limit."""
    out = {}
    for rs in ds.metadata.record_sets:
        t = time.perf_counter()
        out[rs.uuid] = next(iter(ds.records(rs.uuid)))
        assert time.perf_counter() - t < FIRST_RECORD_SECONDS, rs.uuid
    return out


def check_rai(doc: dict, started: float, finished: float) -> None:
    for key in RAI_KEYS:
        assert doc.get(key), key
    assert len(RAI_REQUIRED) == len(RAI_KEYS)
    start, end = (dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
                  for v in doc["rai:dataCollectionTimeframe"])
    assert started - 1 <= start <= end <= finished + 1  # when this build fetched / made its images
    assert doc["rai:dataCollectionTimeFrame"] == doc["rai:dataCollectionTimeframe"]  # mlcroissant's spelling too
    for rs in doc["recordSet"]:  # two RecordSets linked by name, never one joined RecordSet
        assert all("references" not in f for f in rs["field"]), rs["@id"]


@pytest.mark.parametrize("recipe", list(METH_SCALES))
def test_meth_croissant(meth, recipe):
    name = METH_SCALES[recipe][0]
    folder = meth.datasets / name
    doc = json.loads((folder / "croissant.json").read_text())
    check_rai(doc, meth.started, meth.finished)
    ds = load(folder / "croissant.json")
    first = first_records(ds)
    assert set(first) == {"records", "images"}
    table = pd.read_csv(folder / f"{name}.csv").set_index("Image file")
    rec = first["records"]
    if recipes.get(recipe).task == "regression":
        assert isinstance(rec["records/label"], int) and 1500 <= rec["records/label"] <= 1900
    else:
        assert text(rec["records/label"]) in recipes.get(recipe).classes
    assert text(rec["records/split"]) in ("train", "validation", "test")
    assert text(rec["records/image_file"]) == f"{rec['records/id']}.jpg"
    image = first["images"]["images/image"]
    assert isinstance(image, Image.Image)  # decoded, not a path string
    row = table.loc[text(first["images"]["images/file_name"])]
    assert image.size == (row["Width"], row["Height"]) and first["images"]["images/id"] == row["ID"]
    # every record of both RecordSets: the table's values and the images' sizes agree with the CSV
    records = list(ds.records("records"))
    assert [r["records/id"] for r in records] == list(table["ID"])
    for r in ds.records("images"):
        row = table.loc[text(r["images/file_name"])]
        assert r["images/image"].size == (row["Width"], row["Height"])


def test_meth_sr_croissant_has_lowres_records(meth_sr):
    folder = meth_sr.datasets / "MetH-SR"
    doc = json.loads((folder / "croissant.json").read_text())
    check_rai(doc, meth_sr.started, meth_sr.finished)
    # the command-line validator too: exit 0 and no warning logged
    proc = subprocess.run([sys.executable, "-m", "mlcroissant.scripts.validate", "--jsonld",
                           str(folder / "croissant.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if ln[:1] in "WE" and ln[1:5].isdigit()], proc.stderr
    ds = load(folder / "croissant.json")
    first = first_records(ds)
    assert set(first) == {"records", "images", "lowres"}
    assert "records/label" not in first["records"]  # super-resolution: no label column in the metadata
    lowres = pd.read_csv(folder / "lowres" / "lowres.csv").set_index("stem")
    n = 0
    for r in ds.records("lowres"):
        s, oid = r["lowres/scale"], r["lowres/id"]
        assert text(r["lowres/file_name"]) == f"{oid}.png"
        assert r["lowres/image"].size == (lowres.at[oid, f"X{s}_width"], lowres.at[oid, f"X{s}_height"])
        n += 1
    assert n == 4 * 2  # four scales of the two test images


def test_ultramnist_croissant(ultramnist):
    folder = ultramnist.project / "ultra-mnist"
    doc = json.loads((folder / "croissant.json").read_text())
    check_rai(doc, ultramnist.started, ultramnist.finished)
    ds = load(folder / "croissant.json")
    first = first_records(ds)
    assert set(first) == {"labels", "images", "digits"}
    assert isinstance(first["labels"]["labels/digit_sum"], int)
    assert first["images"]["images/image"].size == (512, 512)
    truth = {s: pd.read_csv(folder / f"{s}.csv").set_index("id")["digit_sum"].to_dict() for s in ("train", "test")}
    labels = list(ds.records("labels"))
    assert len(labels) == 56
    for r in labels:
        assert r["labels/digit_sum"] == truth[text(r["labels/split"])][text(r["labels/id"])]
    n = 0
    for r in ds.records("images"):
        split, image_id = text(r["images/split"]), text(r["images/id"])
        assert image_id in truth[split] and text(r["images/file_name"]) == f"{image_id}.jpeg"
        assert r["images/image"].size == (512, 512)
        n += 1
    assert n == 56
