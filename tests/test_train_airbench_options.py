"""airbench's training options: alternating flip, a normalization-layer LR scale, BN scales fixed at
1, and straight-line one-cycle ramps (issue 38: fewer epochs to the same accuracy)."""
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from cnnlab.data import AugmentConfig, Augmenter
from cnnlab.data.augment import alternating_flip, flip_phase
from cnnlab.data.errors import DataError
from cnnlab.models import create_model
from cnnlab.train.epoch import Engine
from cnnlab.train.optim import set_lr
from cnnlab.train.options import OptimizerConfig, ScheduleConfig
from cnnlab.train.schedules import lr_at
from cnnlab.train.stages import plan_stages, stage_optimizer
from engine_helpers import REPO, StopAt, tiny_overrides


def _engine(n_images: int, seed: int = 3) -> Engine:
    augmenter = Augmenter(AugmentConfig(hflip=True, flip_mode="alternating"))
    return Engine(cfg=None, model=nn.Identity(), task=None, normalizer=lambda x: x, augmenter=augmenter,
                  train_x=torch.zeros(n_images, 3, 4, 4, dtype=torch.uint8), train_y=torch.zeros(n_images),
                  shuffle_gen=torch.Generator(), augment_gen=torch.Generator(), device=torch.device("cpu"),
                  amp_dtype=None, channels_last=False, steps_per_epoch=1, plan=[],
                  flip_phase=flip_phase(n_images, seed), batch_part=(0, n_images))


def test_alternating_flip_shows_every_image_both_ways_in_any_two_consecutive_epochs():
    n = 64
    engine = _engine(n)
    images = torch.randn(n, 3, 4, 4)          # no image is its own mirror
    ids = torch.randperm(n)                    # a shuffled batch: the flip follows the image, not the row
    seen = []
    for epoch in range(3):
        engine.epoch = epoch
        out = engine.augment(images[ids], ids)
        flipped = torch.tensor([torch.equal(o, x.flip(2)) for o, x in zip(out, images[ids])])
        kept = torch.tensor([torch.equal(o, x) for o, x in zip(out, images[ids])])
        assert bool((flipped ^ kept).all())    # each image exactly mirrored or exactly kept
        seen.append(flipped)
    assert bool((seen[0] ^ seen[1]).all()) and bool((seen[1] ^ seen[2]).all())
    assert 0 < int(seen[0].sum()) < n          # a random phase, not all one way
    # The phase is a pure function of the seed: a resumed run flips as the uninterrupted one.
    assert torch.equal(flip_phase(n, 3), flip_phase(n, 3)) and not torch.equal(flip_phase(n, 3), flip_phase(n, 4))
    assert torch.equal(alternating_flip(torch.tensor([True, False]), 1), torch.tensor([False, True]))


def test_alternating_flip_needs_hflip_and_the_image_indices():
    with pytest.raises(ValueError, match="add hflip: true"):
        AugmentConfig(flip_mode="alternating")
    with pytest.raises(ValueError, match="flip_mode"):
        AugmentConfig(hflip=True, flip_mode="sometimes")
    augmenter = Augmenter(AugmentConfig(hflip=True, flip_mode="alternating"))
    with pytest.raises(DataError, match="alternating"):
        augmenter(torch.randn(2, 3, 4, 4), torch.Generator())
    with pytest.raises(DataError, match="one bool per image"):
        augmenter(torch.randn(2, 3, 4, 4), torch.Generator(), flip=torch.tensor([True]))
    with pytest.raises(ValueError, match="image indices"):
        _engine(4).augment(torch.randn(4, 3, 4, 4))


def test_bn_scale_false_fixes_the_scales_at_one_where_no_stage_can_train_them():
    free = create_model("airbench_cpu", widths=[8, 16, 16])
    fixed = create_model("airbench_cpu", widths=[8, 16, 16], bn_scale=False)
    bn_chans = 2 * (8 + 16 + 16)
    n_free = sum(p.numel() for p in free.parameters())
    assert sum(p.numel() for p in fixed.parameters()) == n_free - bn_chans
    bn = fixed.group1.bn1
    assert "weight" in dict(bn.named_buffers()) and torch.equal(bn.weight, torch.ones(8))
    assert set(fixed.state_dict()) == set(free.state_dict())    # the same checkpoint keys
    fixed.train()(torch.randn(4, 3, 32, 32)).sum().backward()
    assert bn.bias.grad is not None


def test_airbench94_takes_the_cpu_nets_options():
    """airbench94 is airbench_cpu's net at other widths: the same bn_scale and logit_scale options."""
    free = create_model("airbench94", widths=[8, 16, 16])
    fixed = create_model("airbench94", widths=[8, 16, 16], bn_scale=False, logit_scale=1.0)
    assert sum(p.numel() for p in fixed.parameters()) == sum(p.numel() for p in free.parameters()) - 2 * 40
    assert fixed.logit_scale == 1.0 and free.logit_scale == pytest.approx(1 / 9)


def test_norm_lr_scale_trains_the_normalization_layers_faster_with_the_same_decay_per_step():
    model = create_model("airbench_cpu", widths=[8, 16, 16], bn_scale=False)
    opt_cfg = OptimizerConfig(name="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, norm_lr_scale=64)
    (stage,) = plan_stages([], 10, 2, opt_cfg)
    optimizer = stage_optimizer(model, opt_cfg, stage)
    set_lr(optimizer, 0.1)
    norm = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    by_kind = {}
    for group in optimizer.param_groups:
        kinds = {id(p) in norm for p in group["params"]}
        assert len(kinds) == 1
        by_kind[kinds.pop()] = group
    assert by_kind[True]["lr"] == pytest.approx(6.4) and by_kind[False]["lr"] == pytest.approx(0.1)
    assert by_kind[True]["lr"] * by_kind[True]["weight_decay"] == pytest.approx(0.1 * 5e-4)
    assert len(by_kind[True]["params"]) == 6        # the six BN shifts, the scales being fixed
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == n_trainable
    with pytest.raises(ValueError, match="norm_lr_scale"):
        OptimizerConfig(name="sgd", norm_lr_scale=0)


def test_norm_lr_scale_one_keeps_a_single_group():
    model = create_model("airbench_cpu", widths=[8, 16, 16])
    opt_cfg = OptimizerConfig(name="sgd", lr=0.2)
    (stage,) = plan_stages([], 10, 2, opt_cfg)
    (group,) = stage_optimizer(model, opt_cfg, stage).param_groups
    assert group["lr_scale"] == 1.0 and group["weight_decay"] == 0.0


def test_linear_onecycle_ramps_straight_from_start_to_peak_to_end():
    cfg = ScheduleConfig(name="onecycle", pct_start=0.25, div_factor=5, final_div_factor=2.0, anneal="linear")
    steps = 101                                      # progress = step / 100
    lrs = [lr_at(s, steps, 1, 1.0, cfg) for s in range(steps)]
    assert lrs[0] == pytest.approx(0.2) and lrs[25] == pytest.approx(1.0) and lrs[100] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.2 + 0.8 * 10 / 25)                   # straight up
    assert lrs[25 + 30] == pytest.approx(1.0 - 0.9 * 30 / 75)             # straight down
    cos = ScheduleConfig(name="onecycle", pct_start=0.25, div_factor=5, final_div_factor=2.0)
    assert lr_at(10, steps, 1, 1.0, cos) < lrs[10]                         # the cosine ramp starts slower
    with pytest.raises(ValueError, match="schedule.anneal"):
        ScheduleConfig(name="onecycle", anneal="exp")


def test_a_run_with_the_airbench_options_resumes_bitwise(tiny_cifar, tmp_path):
    """Interrupted in its second epoch (odd: every image mirrored from its first-epoch flip), the
    run resumes to the same weights as an uninterrupted one."""
    from cnnlab.train.experiment import load_experiment
    from cnnlab.train.loop import train

    overrides = tiny_overrides(epochs=3, batch_size=20, **{
        "augment.flip_mode": "alternating", "optimizer.norm_lr_scale": 16, "schedule.anneal": "linear",
        "model.kwargs": "{widths: [8, 16, 16], bn_scale: false}", "tta": "false", "monitor_test": "false"})
    cfg = load_experiment(REPO / "recipes" / "fast-cpu.yaml", overrides)
    whole = train(cfg, runs_dir=tmp_path / "whole", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    # 180 training images in batches of 20: 9 steps an epoch; stop at step 3 of the second.
    first = train(cfg, runs_dir=tmp_path / "cut", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None,
                  callbacks=[StopAt(9 + 3)])
    assert first.status == "interrupted"
    done = train(None, resume=first.run_dir, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert done.status == "completed"
    a, b = load_file(str(whole.run_dir / "model.safetensors")), load_file(str(first.run_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
