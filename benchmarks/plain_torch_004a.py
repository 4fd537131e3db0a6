"""Train the 004-a CNN with a plain hand-written PyTorch loop and print one JSON line of its speed.

The baseline of the benchmark: its own nn.Sequential, the whole subset pre-built as one float
tensor, a per-batch Python loop (permute indices, slice, forward, loss, backward, step); no
DataLoader, no cnnlab code.
    .venv/bin/python benchmarks/plain_torch_004a.py --num-images 10000 --epochs 3
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from bench_common import (BATCH_SIZE, EpochClock, LEARNING_RATE, build_arg_parser, check_run_args, print_result,
                          result_record)
from cifar_pickles import NUM_CLASSES, CifarDataError, load_cifar10_train

# Keras BatchNormalization defaults, so the layer does the same arithmetic as in the report:
# moving average keeps 0.99 of the old value (PyTorch momentum = 1 - 0.99), epsilon 1e-3.
KERAS_BN = {"momentum": 0.01, "eps": 1e-3}
KERAS_ADAM_EPSILON = 1e-7  # keras.optimizers.Adam default (PyTorch's is 1e-8)


def build_model_004a() -> nn.Sequential:
    """The 004-a network in PyTorch layout (N, C, H, W); Conv -> ReLU -> BatchNorm as in the report."""
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.BatchNorm2d(32, **KERAS_BN),
        nn.Conv2d(32, 32, 3), nn.ReLU(), nn.BatchNorm2d(32, **KERAS_BN),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.BatchNorm2d(64, **KERAS_BN),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.BatchNorm2d(64, **KERAS_BN),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * 5 * 5, NUM_CLASSES),  # softmax lives in CrossEntropyLoss (same maths as Keras)
    )
    # Keras initialisers (Glorot-uniform kernels, zero biases), so both start from the same family.
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def count_params(model: nn.Module) -> tuple[int, int]:
    """(Keras-style total, trainable): the total adds BatchNorm running mean/var, as Keras counts them."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    running_stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return trainable + running_stats, trainable


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                labels: torch.Tensor, generator: torch.Generator, bf16: bool = False) -> float:
    """One shuffled pass over all images (last batch may be short); returns mean batch accuracy.
    bf16: forward and loss under torch.autocast (bf16 convolutions, float32 weights and loss)."""
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(labels), generator=generator)
    correct = torch.zeros((), dtype=torch.int64)  # summed as a tensor: no per-batch host sync
    model.train()
    for start in range(0, len(labels), BATCH_SIZE):
        index = order[start:start + BATCH_SIZE]
        batch, target = images[index], labels[index]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch)
            loss = loss_fn(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        correct += (logits.argmax(dim=1) == target).sum()
    return int(correct) / len(labels)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train, print the JSON result line; returns the exit code."""
    parser = build_arg_parser("Plain PyTorch loop training speed on the 004-a CNN (the baseline).")
    args = parser.parse_args(argv)
    check_run_args(parser, args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    try:
        images_nhwc, labels_np = load_cifar10_train(args.data_dir, args.num_images)
    except CifarDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    images = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()  # to (N, 3, 32, 32)
    labels = torch.from_numpy(labels_np)

    model = build_model_004a()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=KERAS_ADAM_EPSILON)
    generator = torch.Generator().manual_seed(args.seed)

    clock = EpochClock()
    accuracy = float("nan")
    for _ in range(args.epochs):
        clock.start()
        accuracy = train_epoch(model, optimizer, images, labels, generator, bf16=args.precision == "bf16")
        clock.stop()

    params, trainable = count_params(model)
    record = result_record("plain_torch", args, clock, params=params, trainable_params=trainable,
                           final_train_accuracy=accuracy, versions={"torch": torch.__version__})
    print_result(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
