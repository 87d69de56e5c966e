"""How much memory a network needs for a batch of padded images: an activation model per layer.

Every network is written down as the sequence of tensors its forward pass produces, each
``C × H × W`` for one image, with the spatial sizes computed from the padded input shape exactly
as the framework does (VGG's 2×2 max-pools floor, ResNet's strided convolutions and 3×3 pool
with padding 1 ceil). ReLUs are in place (no tensor of their own); a BatchNorm output is a tensor.

Assumptions (conservative: a batch the model says fits, fits):

- **Inference** keeps every forward tensor until the pass ends, as a graph-mode framework without
  memory reuse does (TensorFlow 1.x, the paper's setting), plus the weights in the chosen dtype.
  An eager framework that frees each input after use (PyTorch under ``no_grad``) needs only the
  tensors alive at once: the largest pair of consecutive tensors, plus a residual block's input
  (``activations="live"``, ``--activations live``; :attr:`Estimate.live_bytes_per_image`).
- **Training** keeps every forward tensor for the backward pass and, as a conservative bound,
  one gradient tensor per forward tensor (the input's gradient is not computed), plus the
  weights, their gradients and Adam's two moments, in fp32 (a half-precision run keeps an fp32
  master copy, plus a half copy of the weights).
- Activations and their gradients are stored in the chosen dtype (fp32: 4 bytes, bf16/fp16: 2).
- Not counted: convolution workspaces, the framework's context (~0.3–1 GB on a GPU), allocator
  fragmentation. Leave a margin in ``--memory-budget`` for them.

Calibration (paper 000, §5.2): VGG16, one 4000×4000 image, fp32 — "over 17.5 GB" in inference,
"approximately 40 GB" in training. This model gives 19.5 GB and 39.0 GB (tests check both). The
sum of all forward tensors is what reproduces the paper's figures: the largest live pair alone
(8.3 GB) is far below 17.5 GB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
MODELS = ("vgg16", "resnet50")
ACTIVATIONS = ("all", "live")
CLASSES = 1000  # classifier width; the head is a rounding error next to the activations


@dataclass(frozen=True)
class Tensor:
    name: str
    channels: int
    height: int
    width: int
    held: int = 0  # elements of other tensors alive while this one is computed (a residual block's input)

    @property
    def elements(self) -> int:
        return self.channels * self.height * self.width


def _floor2(x: int) -> int:
    return x // 2


def _ceil2(x: int) -> int:
    return (x + 1) // 2


# --- the networks -----------------------------------------------------------------------------------------------

VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def vgg16(height: int, width: int) -> tuple[list[Tensor], int]:
    """Forward tensors of VGG16's convolutional trunk + global pooling + a linear head; and its parameters.

    Variable-shape inputs need a fully-convolutional VGG (papers 001/002): the trunk's 13 conv
    layers, then global average pooling and one linear layer to the classes.
    """
    t = [Tensor("input", 3, height, width)]
    params = 0
    cin, h, w = 3, height, width
    for b, (c, n) in enumerate(VGG16_BLOCKS, 1):
        for k in range(1, n + 1):
            params += 9 * cin * c + c
            t.append(Tensor(f"conv{b}_{k}", c, h, w))
            cin = c
        h, w = _floor2(h), _floor2(w)
        t.append(Tensor(f"pool{b}", c, max(h, 1), max(w, 1)))
    t.append(Tensor("gap", cin, 1, 1))
    t.append(Tensor("fc", CLASSES, 1, 1))
    params += cin * CLASSES + CLASSES
    return t, params


RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))


def resnet50(height: int, width: int) -> tuple[list[Tensor], int]:
    """Forward tensors and parameters of ResNet-50 (v1.5: the stride on the 3×3 conv, as torchvision)."""
    t = [Tensor("input", 3, height, width)]
    h, w = _ceil2(height), _ceil2(width)  # 7×7 stride 2 padding 3
    t += [Tensor("conv1", 64, h, w), Tensor("bn1", 64, h, w)]
    params = 7 * 7 * 3 * 64 + 2 * 64
    h, w = _ceil2(h), _ceil2(w)  # 3×3 max-pool stride 2 padding 1
    t.append(Tensor("maxpool", 64, h, w))
    cin = 64
    for s, (width_, blocks, stride) in enumerate(RESNET50_STAGES, 2):
        out = 4 * width_
        for b in range(blocks):
            st = stride if b == 0 else 1
            name = f"layer{s - 1}.{b}"
            held = cin * h * w  # the block's input stays alive until the residual add
            h2, w2 = (_ceil2(h), _ceil2(w)) if st == 2 else (h, w)
            t += [Tensor(f"{name}.conv1", width_, h, w, held), Tensor(f"{name}.bn1", width_, h, w, held),
                  Tensor(f"{name}.conv2", width_, h2, w2, held), Tensor(f"{name}.bn2", width_, h2, w2, held),
                  Tensor(f"{name}.conv3", out, h2, w2, held), Tensor(f"{name}.bn3", out, h2, w2, held)]
            params += cin * width_ + 2 * width_ + 9 * width_ * width_ + 2 * width_ + width_ * out + 2 * out
            if b == 0:
                t += [Tensor(f"{name}.downsample.conv", out, h2, w2, held + out * h2 * w2),
                      Tensor(f"{name}.downsample.bn", out, h2, w2, held + out * h2 * w2)]
                params += cin * out + 2 * out
            t.append(Tensor(f"{name}.add", out, h2, w2))
            h, w, cin = h2, w2, out
    t.append(Tensor("avgpool", cin, 1, 1))
    t.append(Tensor("fc", CLASSES, 1, 1))
    params += cin * CLASSES + CLASSES
    return t, params


NETWORKS = {"vgg16": vgg16, "resnet50": resnet50}


# --- the estimate -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """Memory of one network at one padded shape: a fixed part plus a part per image of the batch."""

    model: str
    height: int
    width: int
    dtype: str
    train: bool
    params: int
    fixed_bytes: int  # weights (+ gradients and optimizer state when training)
    bytes_per_image: int  # activations (+ their gradients when training)
    live_bytes_per_image: int  # largest pair of consecutive forward tensors (an eager framework's inference peak)

    def total(self, batch: int = 1) -> int:
        """Bytes for a batch of ``batch`` images at this shape."""
        return self.fixed_bytes + batch * self.bytes_per_image

    def max_batch(self, budget: int) -> int:
        """The largest batch that fits ``budget`` bytes (0 when not even one image fits)."""
        if budget < self.total(1):
            return 0
        return (budget - self.fixed_bytes) // self.bytes_per_image


def estimate(model: str, height: int, width: int, dtype: str = "fp32", train: bool = False,
             activations: str = "all") -> Estimate:
    """The memory model of ``model`` for images padded to ``height × width`` (see the module notes).

    ``activations="live"`` (inference only) counts the tensors alive at once in an eager framework
    (PyTorch under ``no_grad``) instead of every forward tensor.
    """
    if activations not in ACTIVATIONS:
        raise ValueError(f"unknown activations mode {activations!r} (choose from {', '.join(ACTIVATIONS)})")
    if activations == "live" and train:
        raise ValueError("activations='live' applies to inference only: training keeps every forward tensor")
    if model not in NETWORKS:
        raise ValueError(f"unknown model {model!r} (choose from {', '.join(MODELS)})")
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPE_BYTES)})")
    if height < 1 or width < 1:
        raise ValueError("the padded shape must be at least 1×1")
    tensors, params = NETWORKS[model](int(height), int(width))
    size = DTYPE_BYTES[dtype]
    forward = sum(t.elements for t in tensors)
    live = max(a.elements + b.elements + b.held for a, b in zip(tensors, tensors[1:]))
    if train:
        grads = forward - tensors[0].elements  # no gradient for the input image
        per_image = (forward + grads) * size
        # weights + gradients + Adam's two moments in fp32; a half run adds its half copy of the weights
        fixed = params * (16 + (size if size < 4 else 0))
    else:
        per_image = (live if activations == "live" else forward) * size
        fixed = params * size
    return Estimate(model, int(height), int(width), dtype, train, params, fixed, per_image, live * size)


# --- budgets ----------------------------------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          # bare letters as Slurm and Docker read them: binary
          "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_BUDGET = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_budget(text: str) -> int:
    """Bytes of a budget like ``16GiB``, ``16GB``, ``16000MB``, ``16G`` (binary) or ``17179869184``."""
    m = _BUDGET.match(str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read memory budget {text!r}: use a number and a unit such as 16GiB, 16GB, "
                         "16000MB or 16G (binary)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value < 1:
        raise ValueError(f"memory budget {text!r} must be positive")
    return int(value)


def human_bytes(n: float) -> str:
    """``n`` bytes in GB/MB (decimal, as the paper's figures)."""
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"
