"""bfloat16 fine-tuning steps: where they are fast, and the trunk's forward under autocast.

Only the trunk runs in bfloat16: the head, the loss, the weights and the optimizer stay float32, and
encoding (validation, the index) stays float32 on ONNX Runtime.
"""
from __future__ import annotations

import torch

from hashseek.models.backbones.base import Backbone

PRECISIONS = ("auto", "float32", "bfloat16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")   # /proc/cpuinfo flags of CPUs with bfloat16 arithmetic


def autocast_dtype(precision: str, device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> torch.dtype | None:
    """The dtype a fine-tuning step's trunk runs in under autocast, None for float32.

    ``auto`` takes bfloat16 only where it is fast: a CUDA device that supports it, or a CPU with
    bfloat16 instructions (AVX-512 BF16, AMX). Elsewhere bfloat16 is emulated and slower than float32."""
    if precision == "float32" or (precision == "auto" and not _fast_bfloat16(device, cpuinfo)):
        return None
    return torch.bfloat16


def _fast_bfloat16(device: torch.device, cpuinfo: str) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open(cpuinfo) as lines:
            flags = next((line for line in lines if line.startswith("flags")), "").split()
    except OSError:   # not Linux: no way to tell, keep float32
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def trunk_forward(backbone: Backbone, images: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """The trunk's feature maps, under autocast when ``dtype`` is given; float32 out, so the head and the
    loss never see bfloat16."""
    with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
        maps = backbone.forward_features(images)
    return maps.float()
