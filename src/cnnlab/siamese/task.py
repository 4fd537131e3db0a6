"""The siamese task (report 002-c): the training loop's step on pairs, and how a split is scored.

    task: {name: siamese, loss: contrastive_half, margin: 1.0, same_fraction: 0.5, sampler: anchor}

A step takes the loop's batch of training-image positions as the x1 images, draws their partners
(pairs.py) from the task's own random stream (checkpointed by the loop, so a resumed run draws
the same pairs), embeds x1 and x2 in one forward pass of the shared-weight twin and returns the
pair loss. The step's `correct` counts the pairs the loss's own boundary gets right (d² < margin/2
for the report's losses, d < margin/2 otherwise), so a siamese run's train_acc is that pair
accuracy; for the triplet loss, which has no such boundary, it counts the x1 images whose nearest
other image of the step (x1 and x2 together) has their class. A split's score is (the loss on a fixed set of pairs of the split, the accuracy of the
nearest class centroid of the training embeddings); both draw from fixed seeds of their own and
never from the training streams.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cnnlab.siamese.embed import class_centroids, embed, nearest_centroid
from cnnlab.siamese.losses import (LOSSES, batch_nearest_neighbour_hits, contrastive_loss, pair_decisions,
                                    squared_distances, triplet_semihard_loss)
from cnnlab.siamese.pairs import SAMPLERS, PairSampler, Pairs
from cnnlab.siamese.twin import EMBED_FROM, SiameseNet
from cnnlab.train import runtime
from cnnlab.train.task import StepOutput, Task

# Offsets of the task's seeds from the experiment's seed (the loop's shuffle uses seed, its
# augmentation seed + 1): the pairs' stream; and fixed seeds, the same for every run, for the
# scored pairs of a split and the training images that make the class centroids.
PAIR_SEED_OFFSET = 2
EVAL_PAIRS_SEED = 2002
CENTROID_SEED = 2003


def _check_int(name: str, value, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"task.{name} must be an integer >= {minimum}{' or null' if allow_none else ''}, "
                         f"got {value!r}")


class SiameseTask(Task):
    name = "siamese"
    loss_name = "pair loss on fixed pairs"

    def __init__(self, loss: str = "contrastive_half", margin: float = 1.0, same_fraction: float = 0.5,
                 sampler: str = "random", anchors_per_batch: int = 1, embedding_dim: Optional[int] = 64,
                 normalize: bool = True, embed_from: str = "features", centroid_images: int = 10000,
                 eval_pairs: int = 5000):
        if loss not in LOSSES:
            raise ValueError(f"task.loss={loss!r} is not a siamese loss; choose one of {', '.join(LOSSES)}")
        if sampler not in SAMPLERS:
            raise ValueError(f"task.sampler={sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if embed_from not in EMBED_FROM:
            raise ValueError(f"task.embed_from={embed_from!r}; choose one of {', '.join(EMBED_FROM)}")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0:
            raise ValueError(f"task.margin must be a number > 0, got {margin!r}")
        if isinstance(same_fraction, bool) or not isinstance(same_fraction, (int, float)) \
                or not 0 <= same_fraction <= 1:
            raise ValueError(f"task.same_fraction must be a fraction in [0, 1], got {same_fraction!r}")
        if not isinstance(normalize, bool):
            raise ValueError(f"task.normalize must be true or false, got {normalize!r}")
        _check_int("anchors_per_batch", anchors_per_batch, 1)
        _check_int("embedding_dim", embedding_dim, 1, allow_none=True)
        _check_int("centroid_images", centroid_images, 0)
        _check_int("eval_pairs", eval_pairs, 1)
        self.loss, self.margin, self.same_fraction = loss, float(margin), float(same_fraction)
        self.sampler, self.anchors_per_batch = sampler, anchors_per_batch
        self.embedding_dim, self.normalize, self.embed_from = embedding_dim, normalize, embed_from
        self.centroid_images, self.eval_pairs = centroid_images, eval_pairs
        self._pair_gen: Optional[torch.Generator] = None
        self._train_pairs: Optional[tuple[torch.Tensor, PairSampler]] = None

    # --- the loop's hooks ---------------------------------------------------------------------

    def build_model(self, model: nn.Module, num_classes: int, in_chans: int, input_size: int) -> nn.Module:
        return SiameseNet(model, self.embedding_dim, self.normalize, self.embed_from, in_chans, input_size)

    def generators(self, device: torch.device, seed: int) -> dict[str, torch.Generator]:
        # On the CPU whatever the device: the same pairs on CPU and GPU, and a checkpoint's stream
        # continues bitwise on either.
        self._pair_gen = torch.Generator().manual_seed(seed + PAIR_SEED_OFFSET)
        return {"pairs": self._pair_gen}

    def step(self, engine, idx: torch.Tensor) -> StepOutput:
        pairs = self.draw_pairs(engine, idx)
        n = pairs.x1.numel()
        both = torch.cat([pairs.x1, pairs.x2])
        x = engine.normalizer(engine.train_x[both])
        if engine.augmenter.enabled:
            x = engine.augmenter(x, engine.augment_gen)
        if engine.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(engine.device, engine.amp_dtype):
            emb = engine.forward(x)
        emb = emb.float()
        if self.loss == "triplet":
            labels = engine.train_y[both]
            loss = triplet_semihard_loss(emb, labels, self.margin)
            correct = batch_nearest_neighbour_hits(emb, labels, n)
        else:
            d2 = squared_distances(emb[:n], emb[n:])
            loss = contrastive_loss(d2, pairs.same, self.margin, self.loss)
            correct = (pair_decisions(d2.detach(), self.loss, self.margin) == pairs.same).sum()
        return StepOutput(loss, n, correct)

    def score(self, model: nn.Module, ds, ctx) -> tuple[float, float]:
        """(mean loss on the split's fixed pairs, nearest-class-centroid accuracy) in eval mode.
        `ctx` (the loop's Engine, or a run handle's EvalContext) brings the training images."""
        emb = embed(model, ds.images, ctx.normalizer, ctx.eval_batch_size, ctx.amp_dtype, ctx.channels_last)
        labels = ds.labels.cpu().long()
        num_classes = max(len(ds.classes), int(ctx.train_y.max()) + 1, int(labels.max()) + 1)
        ref = self.centroid_positions(ctx.train_x.shape[0]).to(ctx.train_x.device)
        ref_emb = embed(model, ctx.train_x[ref], ctx.normalizer, ctx.eval_batch_size, ctx.amp_dtype,
                        ctx.channels_last)
        centroids = class_centroids(ref_emb, ctx.train_y[ref].cpu(), num_classes)
        accuracy = (nearest_centroid(emb, centroids) == labels).double().mean().item()
        return self.pairs_loss(emb, labels, ctx.batch_size), accuracy

    def unsupported(self, command: str) -> Optional[str]:
        """A twin embeds images: it has no class scores to predict, export as a classifier, explain
        with Grad-CAM, or teach; its own page (siamese.html) scores the embeddings."""
        reasons = {
            "predict": "a siamese run embeds images and has no class probabilities to predict; its siamese.html "
                       "scores the embeddings (one-vs-rest, kNN, verification)",
            "export": "a siamese run's network outputs embeddings, not class scores; export a classification run",
            "explain": "Grad-CAM and class activations need class scores, which a siamese twin does not have; "
                       "use cnnlab probe on its embeddings instead",
            "teacher": "a siamese run has no class predictions to teach a student with; use a classification run",
            "robust": "a siamese run has no class scores to measure under corruptions; cnnlab robust needs a "
                      "classification run",
            "source": "a siamese run's weights are a twin (body.* and head.*), which cnnlab does not load into a "
                      "classifier as a transfer source; start from a classification run",
        }
        return reasons.get(command)

    # --- pieces, public for the report page and the tests -------------------------------------

    def draw_pairs(self, engine, idx: torch.Tensor) -> Pairs:
        """The pairs of one training step (advances the task's random stream)."""
        if self._pair_gen is None:   # the loop calls generators() first; this is for direct callers
            self.generators(engine.device, engine.cfg.seed)
        if self._train_pairs is None or self._train_pairs[0] is not engine.train_y:
            self._train_pairs = (engine.train_y, PairSampler(engine.train_y))
        return self._train_pairs[1].draw(idx, self.same_fraction, self._pair_gen, self.sampler, self.anchors_per_batch)

    def centroid_positions(self, n_train: int) -> torch.Tensor:
        """The training images (positions, sorted) whose embeddings make the class centroids:
        all of them with centroid_images 0 or >= n_train, else a fixed random subset."""
        if self.centroid_images == 0 or self.centroid_images >= n_train:
            return torch.arange(n_train)
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(CENTROID_SEED))
        return perm[:self.centroid_images].sort().values

    def eval_pairs_of(self, labels: torch.Tensor) -> Optional[Pairs]:
        """The fixed scored pairs of a split (random pairs, same_fraction of them same-class; the
        same for every run of a split); None when the split has a single class."""
        labels = labels.cpu().long()
        if labels.numel() < 2 or int(labels.unique().numel()) < 2:
            return None
        gen = torch.Generator().manual_seed(EVAL_PAIRS_SEED)
        x1 = torch.randperm(labels.numel(), generator=gen)[:self.eval_pairs]
        return PairSampler(labels).draw(x1, self.same_fraction, gen, "random")

    def pairs_loss(self, emb: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
        """The task's loss on the split's fixed pairs, averaged over batches of ``batch_size``
        pairs (for the contrastive losses the same as the mean over all pairs)."""
        pairs = self.eval_pairs_of(labels)
        if pairs is None:
            return float("nan")
        total, count = 0.0, 0
        for start in range(0, pairs.x1.numel(), batch_size):
            x1, x2, same = (t[start:start + batch_size] for t in (pairs.x1, pairs.x2, pairs.same))
            if self.loss == "triplet":
                both = torch.cat([x1, x2])
                loss = triplet_semihard_loss(emb[both], labels[both], self.margin)
            else:
                loss = contrastive_loss(squared_distances(emb[x1], emb[x2]), same, self.margin, self.loss)
            total += float(loss) * x1.numel()
            count += x1.numel()
        return total / count


__all__ = ["SiameseTask"]
