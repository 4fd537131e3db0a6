"""Is 000-b's erratic val accuracy its batch-norm running statistics? Re-estimate them on training
images (cumulative average over N batches in train mode, no weight change) and score val/test again,
on plain training images and on training images through the run's own augmentation.
    CNNLAB_DATA=DIR python results/000-b/bn-statistics/precise_bn.py RUN [N_BATCHES]   (RUN: the full run folder, with model.safetensors)"""
import sys

import torch

from cnnlab.runs import load_run

run = load_run(sys.argv[1])   # the data: $CNNLAB_DATA or the user cache, as cnnlab train finds it
n_batches = int(sys.argv[2]) if len(sys.argv) > 2 else 100
torch.set_num_threads(1)
model, norm, splits = run.model, run.normalizer, run.splits


@torch.no_grad()
def accuracy(split):
    model.eval()
    ds = getattr(splits, split)
    hits = 0
    for i in range(0, len(ds), 500):
        x = norm(ds.images[i:i + 500])
        hits += (model(x).argmax(1) == ds.labels[i:i + 500]).sum().item()
    return 100 * hits / len(ds)


from cnnlab.data import Augmenter

before = {s: accuracy(s) for s in ("val", "test")}
bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
augmenter = Augmenter(run.config.augment)


def reestimate(augment: bool) -> dict:
    for m in bns:
        m.reset_running_stats()
        m.momentum = None   # cumulative average over the batches seen
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(splits.train), generator=g)
    model.train()
    with torch.no_grad():
        for b in range(n_batches):
            x = norm(splits.train.images[order[b * 64:(b + 1) * 64]])
            model(augmenter(x, g) if augment else x)
    return {s: accuracy(s) for s in ("val", "test")}


plain, augmented = reestimate(False), reestimate(True)
print(f"{run.run_dir.name}: running statistics as trained: val {before['val']:.2f}% test {before['test']:.2f}%")
print(f"re-estimated on {n_batches} x 64 training images, plain: val {plain['val']:.2f}% test {plain['test']:.2f}%")
print(f"re-estimated on {n_batches} x 64 training images, augmented as in training ({augmenter.enabled}): "
      f"val {augmented['val']:.2f}% test {augmented['test']:.2f}%")
