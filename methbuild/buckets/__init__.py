"""Shape-aware bucketing (B2B, papers 001/002) and memory-aware batch sizes.

- :func:`methbuild.buckets.boundaries.bucketize`: super-buckets by pixel count, buckets by aspect ratio.
- :func:`methbuild.buckets.memory.estimate`: activation memory of VGG16 / ResNet-50 at a padded shape.
- :func:`methbuild.buckets.plan.make_plan` / ``write_plan``: PLAN.csv and PLAN.json.
- :class:`methbuild.buckets.BatchPlan`: framework-free batches of indices from a plan, per epoch.

Names load lazily, so ``from methbuild.buckets import BatchPlan`` in a training job imports numpy only.
"""

from __future__ import annotations

from methbuild._lazy import lazy_getattr

_LAZY = {
    "BatchPlan": "methbuild.buckets.batchplan",
    "bucketize": "methbuild.buckets.boundaries",
    "group_padding": "methbuild.buckets.boundaries",
    "estimate": "methbuild.buckets.memory",
    "parse_budget": "methbuild.buckets.memory",
    "make_plan": "methbuild.buckets.plan",
    "write_plan": "methbuild.buckets.plan",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr("methbuild.buckets", _LAZY)
