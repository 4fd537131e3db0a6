"""Siamese parts (report 002-c): losses, pair sampling, the twin, the task's options, the evaluation maths."""
import math

import numpy as np
import pytest
import torch

import cnnlab.siamese  # noqa: F401  (registers the task)
from cnnlab.models import create_model
from cnnlab.siamese import PairSampler, SiameseNet, SiameseTask
from cnnlab.siamese import evaluate as ev
from cnnlab.siamese.losses import (PAIR_LOSSES, batch_nearest_neighbour_hits, contrastive_loss, pair_decisions,
                                   squared_distances, triplet_semihard_loss)
from cnnlab.train.stages import head_prefixes
from cnnlab.tasks import create_task

from engine_helpers import REPO

# --- losses --------------------------------------------------------------------------------------

# e1 = (0, 0), e2 = (0.3, 0.4): d = 0.5, d² = 0.25; margin 1.
E1, E2 = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.3, 0.4]])
BY_HAND = {   # loss: (same pair, different pair)
    "contrastive_half": (0.5 * 0.25, 1 - 0.25),          # Y·½·d², max(m − d², 0)
    "contrastive": (0.25, 1 - 0.25),                      # Y·d², max(m − d², 0)
    "contrastive_hinge_squared": (0.25, (1 - 0.5) ** 2),  # Y·d², max(m − d, 0)²
}


@pytest.mark.parametrize("kind", PAIR_LOSSES)
def test_pair_losses_match_the_hand_computed_values(kind):
    d2 = squared_distances(E1, E2)
    assert d2.item() == pytest.approx(0.25)
    same_value, different_value = BY_HAND[kind]
    assert contrastive_loss(d2, torch.tensor([True]), 1.0, kind).item() == pytest.approx(same_value)
    assert contrastive_loss(d2, torch.tensor([False]), 1.0, kind).item() == pytest.approx(different_value)
    # a batch is the mean of its pairs
    both = contrastive_loss(d2.repeat(2), torch.tensor([True, False]), 1.0, kind).item()
    assert both == pytest.approx((same_value + different_value) / 2)


def _distance_after_one_step(kind: str, same: bool, e2: torch.Tensor, margin: float = 1.0) -> tuple[float, float]:
    e1 = torch.zeros(1, 2, requires_grad=True)
    d2 = squared_distances(e1, e2)
    contrastive_loss(d2, torch.tensor([same]), margin, kind).backward()
    with torch.no_grad():
        moved = e1 - 0.1 * e1.grad
    return d2.sqrt().item(), squared_distances(moved, e2).sqrt().item()


@pytest.mark.parametrize("kind", PAIR_LOSSES)
def test_a_gradient_step_pulls_same_pairs_together_and_pushes_different_ones_apart(kind):
    before, after = _distance_after_one_step(kind, True, E2)
    assert after < before, "a same-class pair must come closer"
    before, after = _distance_after_one_step(kind, False, E2)
    assert after > before, "a different-class pair inside the margin must move apart"
    far = torch.tensor([[1.2, 0.0]])   # d = 1.2: beyond the margin (d > 1 and d² > 1)
    before, after = _distance_after_one_step(kind, False, far)
    assert after == pytest.approx(before), "a different-class pair beyond the margin is left alone"


def test_identical_embeddings_give_a_finite_gradient():
    e = torch.ones(2, 3, requires_grad=True)
    loss = contrastive_loss(squared_distances(e[:1], e[1:]), torch.tensor([False]), 1.0, "contrastive_hinge_squared")
    loss.backward()
    assert torch.isfinite(e.grad).all() and loss.item() == pytest.approx(1.0, abs=1e-5)   # d taken as 1e-6


def _line(points):
    return torch.tensor([[p, 0.0] for p in points])


def test_triplet_semihard_loss_by_hand():
    # a = 0, p = 1 (class 0); n1 = 0.5, n2 = 1.5 (class 1); every anchor-positive distance is 1.
    # (a, p): first negative farther than 1 is n2 (1.5)                -> max(1 − 1.5 + m, 0)
    # (p, a): negatives at 0.5 and 0.5, none farther: the farthest, 0.5 -> max(1 − 0.5 + m, 0)
    # (n1, n2): class-0 points at 0.5, 0.5: farthest 0.5                 -> max(1 − 0.5 + m, 0)
    # (n2, n1): 1.5 and 0.5: the first farther than 1 is 1.5             -> max(1 − 1.5 + m, 0)
    emb, labels = _line([0.0, 1.0, 0.5, 1.5]), torch.tensor([0, 0, 1, 1])
    assert triplet_semihard_loss(emb, labels, 1.0).item() == pytest.approx((0.5 + 1.5 + 1.5 + 0.5) / 4, abs=1e-5)
    assert triplet_semihard_loss(emb, labels, 0.2).item() == pytest.approx((0 + 0.7 + 0.7 + 0) / 4, abs=1e-5)


def test_a_triplet_step_shrinks_the_violation():
    # anchor (0, 0), positive (1, 0), a negative (0, 0.5) nearer than the positive
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]], requires_grad=True)
    loss = triplet_semihard_loss(emb, torch.tensor([0, 0, 1]), 0.5)
    loss.backward()
    with torch.no_grad():
        moved = emb - 0.05 * emb.grad
    d = lambda e, i, j: (e[i] - e[j]).norm().item()  # noqa: E731
    assert d(moved, 0, 1) < d(emb, 0, 1), "the positive comes closer"
    assert d(moved, 0, 2) > d(emb, 0, 2), "the negative moves away"
    assert triplet_semihard_loss(moved, torch.tensor([0, 0, 1]), 0.5).item() < loss.item()


def test_a_collapsed_triplet_batch_still_gets_a_gradient():
    # Unit-length embeddings within ~1e-7 of each other, where a twin with a tiny init starts: the loss
    # is the margin, and the distances must still give a gradient that separates the classes.
    base = torch.nn.functional.normalize(torch.ones(1, 8), dim=1)
    offsets = torch.tensor([[1.0], [1.2], [-1.0], [-1.3]]) * torch.eye(8)[:1] * 1e-7
    emb = (base + offsets).requires_grad_(True)
    loss = triplet_semihard_loss(emb, torch.tensor([0, 0, 1, 1]), 0.2)
    loss.backward()
    assert loss.item() == pytest.approx(0.2, abs=1e-5)
    assert emb.grad.abs().max().item() > 1e-3, "a collapsed batch must not be a fixed point of the loss"
    assert torch.isfinite(emb.grad).all()


def test_triplet_without_a_positive_is_zero_with_a_gradient():
    emb = torch.randn(3, 4, requires_grad=True)
    loss = triplet_semihard_loss(emb, torch.tensor([0, 1, 2]), 0.2)
    loss.backward()
    assert loss.item() == 0.0 and emb.grad is not None


def test_pair_decisions_use_the_losses_own_boundary():
    d2 = torch.tensor([0.4, 0.6])
    assert pair_decisions(d2, "contrastive", 1.0).tolist() == [True, False]                 # d² < 0.5
    assert pair_decisions(torch.tensor([0.2, 0.3]), "triplet", 1.0).tolist() == [True, False]  # d < 0.5


def test_triplet_accuracy_is_the_batch_nearest_neighbour_not_a_distance_boundary():
    # Unit-length embeddings of two classes, every pair far apart (d > 0.5 = margin/2 at margin 1),
    # yet each anchor's nearest other row has its class: the pair boundary calls all of them
    # "different", the nearest neighbour gets them right.
    angles = torch.tensor([0.0, 0.9, 3.0, 3.9])       # radians: classes 0, 0, 1, 1
    emb = torch.stack([angles.cos(), angles.sin()], dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    assert not pair_decisions(squared_distances(emb[:2], emb[2:]), "triplet", 1.0).any()
    assert int(batch_nearest_neighbour_hits(emb, labels, anchors=4)) == 4
    assert int(batch_nearest_neighbour_hits(emb, labels, anchors=2)) == 2      # only the first rows count
    swapped = torch.tensor([0, 1, 1, 0])                                         # now every neighbour is wrong
    assert int(batch_nearest_neighbour_hits(emb, swapped, anchors=4)) == 0
    assert batch_nearest_neighbour_hits(emb.requires_grad_(True), labels, 4).dtype == torch.int64


# --- pairs ----------------------------------------------------------------------------------------

LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 1, 0])


def test_pairs_are_labelled_right_and_never_pair_an_image_with_itself():
    sampler, gen = PairSampler(LABELS), torch.Generator().manual_seed(0)
    alone = torch.bincount(LABELS)[LABELS] == 1          # image 9 is its class's only image
    self_pairs = 0
    for _ in range(300):
        p = sampler.draw(torch.randperm(12, generator=gen)[:8], 0.5, gen, "random")
        assert torch.equal(LABELS[p.x1] == LABELS[p.x2], p.same)
        itself = (p.x1 == p.x2) & p.same
        assert bool(alone[p.x1[itself]].all()), "only an image alone in its class is its own partner"
        self_pairs += int(itself.sum())
    assert self_pairs > 0


@pytest.mark.parametrize("sampler,fraction,rows", [("random", 0.3, 7), ("anchor", 0.25, 10)])
def test_the_same_class_fraction_holds_over_many_draws(sampler, fraction, rows):
    # 0.3 x 7 = 2.1 and 0.25 x 5 = 1.25 same pairs per group: the whole part every time, the rest on average.
    s, gen = PairSampler(LABELS), torch.Generator().manual_seed(1)
    same = torch.cat([s.draw(torch.randint(0, 12, (rows,), generator=gen), fraction, gen, sampler, anchors=2).same
                      for _ in range(3000)])
    assert same.float().mean().item() == pytest.approx(fraction, abs=0.01)


def test_a_whole_number_of_same_pairs_is_exact_every_batch():
    s, gen = PairSampler(torch.arange(1000) % 10), torch.Generator().manual_seed(2)
    for _ in range(20):   # the report's int(0.5 x 128) = 64
        assert int(s.draw(torch.randperm(1000)[:128], 0.5, gen).same.sum()) == 64


def test_different_class_partners_are_uniform_over_the_other_classes():
    labels = torch.arange(40) % 4
    s, gen = PairSampler(labels), torch.Generator().manual_seed(3)
    x2 = torch.cat([s.draw(torch.zeros(50, dtype=torch.long), 0.0, gen).x2 for _ in range(200)])
    counts = torch.bincount(x2, minlength=40).float()
    assert counts[labels == 0].sum() == 0                       # never the anchor's class
    others = counts[labels != 0]
    assert others.min() > 0.7 * others.mean() and others.max() < 1.3 * others.mean()   # 10,000 draws over 30


def test_the_same_seed_and_state_give_the_same_pairs():
    s = PairSampler(LABELS)
    idx = torch.arange(12)
    a, b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    first, again = s.draw(idx, 0.5, a), s.draw(idx, 0.5, b)
    assert torch.equal(first.x2, again.x2) and torch.equal(first.same, again.same)
    state = a.get_state()
    nxt = s.draw(idx, 0.5, a, "anchor", anchors=3)
    a.set_state(state)
    assert torch.equal(nxt.x2, s.draw(idx, 0.5, a, "anchor", anchors=3).x2)
    assert not torch.equal(first.x2, s.draw(idx, 0.5, a).x2), "a stream that moved on draws other pairs"


def test_anchor_batches_hold_one_anchor_per_group():
    s, gen = PairSampler(torch.arange(200) % 10), torch.Generator().manual_seed(4)
    idx = torch.randperm(200)[:30]
    p = s.draw(idx, 0.5, gen, "anchor", anchors=4)                # groups of 8, 8, 8, 6 rows
    groups = [slice(0, 8), slice(8, 16), slice(16, 24), slice(24, 30)]
    for g in groups:
        assert set(p.x1[g].tolist()) == {int(idx[g.start])}, "every x1 of a group is its first image"
        assert p.same[g].sum() >= 3 and not bool(p.same[g][int(p.same[g].sum()):].any())   # same pairs first
    whole = s.draw(idx, 0.5, gen, "anchor", anchors=1)
    assert set(whole.x1.tolist()) == {int(idx[0])}               # the report's: one x1 for the batch


def test_a_single_class_cannot_make_pairs():
    with pytest.raises(ValueError, match="at least 2 classes"):
        PairSampler(torch.zeros(5, dtype=torch.long))


# --- the task's options, the twin ------------------------------------------------------------------

@pytest.mark.parametrize("options,message", [
    ({"loss": "cosine"}, "not a siamese loss; choose one of contrastive_half"),
    ({"sampler": "hard"}, "task.sampler='hard'; choose one of random, anchor"),
    ({"margin": 0}, "task.margin must be a number > 0"),
    ({"same_fraction": 1.5}, r"task.same_fraction must be a fraction in \[0, 1\]"),
    ({"embedding_dim": 0}, "task.embedding_dim must be an integer >= 1 or null"),
    ({"anchors_per_batch": 2.5}, "task.anchors_per_batch must be an integer >= 1"),
    ({"embed_from": "fc2"}, "task.embed_from='fc2'; choose one of features, pre_logits"),
    ({"normalize": "yes"}, "task.normalize must be true or false"),
    ({"margine": 1.0}, "bad option for siamese"),
])
def test_bad_options_say_what_is_allowed(options, message):
    with pytest.raises(ValueError, match=message):
        create_task({"name": "siamese", **options})


def test_the_twin_shares_its_weights_and_embeds_on_the_unit_sphere():
    torch.manual_seed(0)
    task = create_task({"name": "siamese", "embedding_dim": 8})
    twin = task.build_model(create_model("cnn004", num_classes=10), 10, 3, 32).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        together, alone = twin(x), twin(x[:2])
    assert together.shape == (4, 8)
    assert torch.allclose(together[:2], alone, atol=1e-5), "both images of a pair go through one network"
    assert torch.allclose(together.norm(dim=1), torch.ones(4), atol=1e-5)
    assert head_prefixes(twin) == ["head"], "stages' trainable: head means the projection"


def test_the_reports_twin_is_the_convnet_up_to_fc2():
    twin = SiameseNet(create_model("convnet002", num_classes=10), None, True, "pre_logits", 3, 32)
    assert twin.embedding_dim == 192 and isinstance(twin.head, torch.nn.Identity)


def test_recipes_hold_the_reports_settings():
    from cnnlab.siamese.assess import REPORT_RESULTS
    from cnnlab.train.experiment import load_experiment

    found = {}
    for path in sorted((REPO / "recipes").glob("002-c-*.yaml")):
        cfg = load_experiment(path)
        task = create_task(cfg.task)
        assert isinstance(task, SiameseTask) and [st.steps for st in cfg.stages] == [50000], path.name
        found[(task.loss, task.sampler)] = task
    assert set(REPORT_RESULTS) | {("contrastive_half", "random"), ("triplet", "random")} == set(found)
    for key in REPORT_RESULTS:
        t = found[key]
        assert (t.margin, t.embed_from, t.embedding_dim, t.normalize) == (1.0, "pre_logits", None, True)
        assert t.anchors_per_batch == 1


# --- evaluation maths ------------------------------------------------------------------------------

def _blobs(n_per_class=30, classes=3, spread=0.1, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = np.eye(classes)[y] * 3 + rng.normal(0, spread, (len(y), classes))
    order = rng.permutation(len(y))
    return x[order], y[order]


def test_classifiers_on_separated_and_on_random_embeddings():
    x, y = _blobs()
    assert ev.one_vs_rest_svm(x, y, x, y).accuracy == 1.0
    assert ev.knn_accuracy(x, y, x, y, k=5).accuracy == 1.0
    assert ev.report_protocol(x, y).accuracy == 1.0
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert ev.report_protocol(noise, y).accuracy < 0.7      # chance is 1/3
    per_class = ev.per_class_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert per_class[:2].tolist() == [0.5, 1.0] and math.isnan(per_class[2])


def test_verification_auc_and_histograms():
    d = np.array([0.1, 0.2, 0.3, 0.9, 1.0, 1.1])
    same = np.array([True, True, True, False, False, False])
    v = ev.verification(d, same)
    assert v.auc == 1.0 and v.mean_same == pytest.approx(0.2) and (v.pairs_same, v.pairs_different) == (3, 3)
    assert ev.verification(d[::-1].copy(), same).auc == 0.0     # every same pair farther: the worst
    edges, h_same, h_diff = ev.distance_histograms(d, same, bins=4)
    assert len(edges) == 5 and np.sum(h_same * np.diff(edges)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same-class and different-class pairs"):
        ev.verification(d, np.ones(6, dtype=bool))


def test_tsne_points_are_a_seeded_sample():
    x, y = _blobs(n_per_class=10)
    points, labels = ev.tsne_points(x, y, max_points=20, seed=0)
    again, _ = ev.tsne_points(x, y, max_points=20, seed=0)
    assert points.shape == (20, 2) and len(labels) == 20 and np.allclose(points, again)
