"""The training step the speed benchmarks time, shared by cpu_options.py and model_steps.py: random
uint8 images scaled on the fly, forward (optionally bf16 autocast), cross-entropy, backward,
optimizer step, the way the engine does it. Kept apart from bench_common.py, which must import
without torch (the Keras benchmark's venv has none).
"""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F


def time_training_steps(forward: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer, *,
                        batch_size: int, num_classes: int, channels_last: bool, bf16: bool,
                        warmup_steps: int, steps: int,
                        scale: Callable[[torch.Tensor], torch.Tensor] = lambda x: x / 255.0) -> dict:
    """Run `warmup_steps` untimed steps, then `steps` timed ones on one fixed batch.

    `forward` is the model or its compiled wrapper (already in train mode); `scale` maps the
    float pixels (0-255) to the network's input range. Returns images_per_s over the timed steps
    and warmup_s, the seconds the warm-up took (compilation, allocator, oneDNN kernel caches).
    """
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (batch_size,))

    def step() -> None:
        x = scale(images.float())
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    t0 = time.perf_counter()
    for _ in range(warmup_steps):
        step()
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    return {"images_per_s": steps * batch_size / seconds, "warmup_s": warmup_s}
