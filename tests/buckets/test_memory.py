"""The activation-memory model against paper 000's VGG16 figures, layer shapes, budgets."""

from __future__ import annotations

import pytest

from methbuild.buckets.memory import estimate, parse_budget, resnet50, vgg16


def test_vgg16_one_4000_image_matches_the_paper():
    inf = estimate("vgg16", 4000, 4000, "fp32", train=False)
    train = estimate("vgg16", 4000, 4000, "fp32", train=True)
    # paper 000 §5.2: "over 17.5GB" in inference, "approximately 40GB" in training, single precision
    assert 17.5e9 < inf.total(1) < 22e9
    assert 0.9 * 40e9 < train.total(1) < 1.1 * 40e9
    # the tensors alive at once (eager inference) would not reach the paper's inference figure
    live = estimate("vgg16", 4000, 4000, "fp32", activations="live")
    assert live.total(1) < 17.5e9 and live.bytes_per_image == inf.live_bytes_per_image
    # conv1_1 and conv1_2 outputs: 2 × 64 × 4000² × 4 bytes
    assert live.bytes_per_image == 2 * 64 * 4000 * 4000 * 4


def test_parameter_counts_are_the_published_ones():
    _, p = vgg16(224, 224)
    assert p == 14_714_688 + 512 * 1000 + 1000  # conv trunk of VGG16 + a linear head after global pooling
    _, p = resnet50(224, 224)
    assert p == 25_557_032  # torchvision resnet50


def test_layer_shapes():
    t, _ = vgg16(224, 224)
    by = {x.name: x for x in t}
    assert (by["conv1_2"].channels, by["conv1_2"].height) == (64, 224)
    assert (by["pool5"].channels, by["pool5"].height, by["pool5"].width) == (512, 7, 7)
    t, _ = vgg16(4000, 3001)
    assert (by := {x.name: x for x in t})["pool1"].width == 1500  # 2×2 max-pool floors
    t, _ = resnet50(224, 224)
    by = {x.name: x for x in t}
    assert (by["maxpool"].height, by["layer4.2.add"].channels, by["layer4.2.add"].height) == (56, 2048, 7)
    t, _ = resnet50(225, 223)
    assert {x.name: x for x in t}["conv1"].height == 113  # strided convolutions with padding ceil


def test_memory_grows_with_shape_and_halves_in_bf16():
    small = estimate("resnet50", 512, 512)
    big = estimate("resnet50", 1024, 1024)
    assert 3.9 < big.bytes_per_image / small.bytes_per_image < 4.1
    half = estimate("resnet50", 512, 512, "bf16")
    assert half.bytes_per_image * 2 == small.bytes_per_image
    tr = estimate("vgg16", 512, 512, "fp32", train=True)
    inf = estimate("vgg16", 512, 512, "fp32")
    assert tr.bytes_per_image > 1.9 * inf.bytes_per_image and tr.fixed_bytes == 4 * inf.fixed_bytes


def test_max_batch():
    e = estimate("vgg16", 1000, 1000, train=True)
    assert e.max_batch(e.total(1) - 1) == 0
    assert e.max_batch(e.total(1)) == 1
    assert e.max_batch(e.total(7) + e.bytes_per_image - 1) == 7
    # a 4000×4000 image for training does not fit 16 GiB, but fits 48 GB
    big = estimate("vgg16", 4000, 4000, train=True)
    assert big.max_batch(16 * 2**30) == 0 and big.max_batch(48 * 10**9) == 1


@pytest.mark.parametrize("text,value", [
    ("16GiB", 16 * 2**30), ("16GB", 16 * 10**9), ("16000MB", 16 * 10**9), ("16G", 16 * 2**30),
    ("16 gib", 16 * 2**30), ("1.5TB", 1_500_000_000_000), ("123456", 123456), ("512MiB", 512 * 2**20)])
def test_parse_budget(text, value):
    assert parse_budget(text) == value


@pytest.mark.parametrize("text", ["", "GB", "16XB", "-1GB", "0", "sixteen"])
def test_parse_budget_refuses(text):
    with pytest.raises(ValueError):
        parse_budget(text)


def test_live_activations_hold_the_residual_input():
    e = estimate("resnet50", 224, 224, activations="live")
    # layer1.0: block input 64×56², then bn3 (256×56²) and the downsample branch (2 × 256×56²) alive together
    assert e.live_bytes_per_image >= (64 + 3 * 256) * 56 * 56 * 4
    with pytest.raises(ValueError, match="inference only"):
        estimate("resnet50", 224, 224, train=True, activations="live")


def test_bad_model_or_dtype():
    with pytest.raises(ValueError):
        estimate("alexnet", 10, 10)
    with pytest.raises(ValueError):
        estimate("vgg16", 10, 10, "int8")
