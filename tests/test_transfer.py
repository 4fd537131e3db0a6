"""Transfer learning on the one loop: sources, trainable parts by name, frozen batch norm, stages."""
import json

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.models import create_model
from cnnlab.models.head import feature_width
from cnnlab.train.experiment import load_experiment
from engine_helpers import train_experiment as train
from cnnlab.train.optim import set_lr
from cnnlab.train.options import OptimizerConfig, StageConfig
from cnnlab.transfer import SourceMissing
from cnnlab.train.stages import plan_stages, stage_at, stage_counts, stage_optimizer, apply_trainable
from engine_helpers import REPO, StopAt, tiny_overrides


def cfg_of(*extra, **kw):
    return load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides(**kw) + list(extra))


@pytest.fixture(scope="module")
def source_run(tiny_cifar, tmp_path_factory):
    runs = tmp_path_factory.mktemp("sources")
    result = train(cfg_of(epochs=1), runs_dir=runs, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    return result.run_dir


def test_000c_counts_5130_trainable_of_15001418():
    # Report 000-c prints "5130 out of 15,001,418" trainable: only the new 10-class layer trains.
    model = create_model("vgg16_cifar000c", num_classes=10)
    plan = plan_stages([StageConfig(epochs=1, trainable="head")], 10, 1, OptimizerConfig())
    (stage,) = stage_counts(model, plan)
    assert stage["params"]["trainable"] == 5130 and stage["params"]["total"] == 15_001_418
    assert all(p.requires_grad for p in model.parameters()), "counting leaves the model as it was"


def test_stage_plan_is_a_function_of_the_global_step():
    stages = [StageConfig(steps=100, trainable="head"), StageConfig(epochs=2, trainable=["features"], lr=1e-4)]
    plan = plan_stages(stages, steps_per_epoch=30, epochs=99, opt=OptimizerConfig(lr=1e-3))
    assert [(s.start_step, s.steps, s.lr) for s in plan] == [(0, 100, 1e-3), (100, 60, 1e-4)]
    assert stage_at(plan, 99).index == 0 and stage_at(plan, 100).index == 1 and stage_at(plan, 10**6).index == 1


def test_a_stage_of_0_steps_is_skipped():
    # 002-d refines "after 0 frozen steps": -o stages.0.steps=0 on the same recipe
    stages = [StageConfig(steps=0, trainable="head"), StageConfig(epochs=2, trainable="all", name="refining")]
    plan = plan_stages(stages, steps_per_epoch=30, epochs=99, opt=OptimizerConfig(lr=1e-3))
    assert [(s.index, s.name, s.start_step, s.steps, s.trainable) for s in plan] == [(0, "refining", 0, 60, "all")]
    with pytest.raises(ValueError, match="every stage has 0"):
        cfg_of("stages=[{steps: 0, trainable: head}, {epochs: 0, trainable: all}]")
    with pytest.raises(ValueError, match=">= 0"):
        StageConfig(steps=-1)


def test_a_run_whose_first_stage_has_0_steps_trains_only_the_second(tiny_cifar, tmp_path, source_run):
    cfg = cfg_of(f"model.pretrained={source_run}",
                 "stages=[{name: frozen, steps: 0, trainable: head}, {name: refining, epochs: 1, trainable: all}]")
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert result.status == "completed"
    assert [s["name"] for s in result.summary["stages"]] == ["refining"]
    before, after = load_file(str(source_run / "model.safetensors")), load_file(str(result.run_dir / "model.safetensors"))
    assert not torch.equal(before["features.conv1.weight"], after["features.conv1.weight"]), "the body trained from step 0"


def test_body_lr_is_a_second_group_scaled_from_the_schedule():
    model = create_model("cnn004", num_classes=10)
    plan = plan_stages([StageConfig(epochs=1, trainable="all", lr=1e-3, body_lr=1e-4)], 10, 1, OptimizerConfig())
    apply_trainable(model, "all")
    opt = stage_optimizer(model, OptimizerConfig(), plan[0])
    set_lr(opt, 5e-4)
    head, body = opt.param_groups
    assert head["lr"] == pytest.approx(5e-4) and body["lr"] == pytest.approx(5e-5)
    assert sum(p.numel() for p in head["params"]) == 16010   # cnn004's final dense 1,600 -> 10


def test_frozen_body_and_its_batch_norm_statistics_stay_bitwise_unchanged(tiny_cifar, tmp_path, source_run):
    cfg = cfg_of(f"model.pretrained={source_run}", "stages=[{epochs: 2, trainable: head}]", epochs=2)
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    before, after = load_file(str(source_run / "model.safetensors")), load_file(str(result.run_dir / "model.safetensors"))
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["classifier.bias", "classifier.weight"], changed   # running_mean/var untouched too
    assert result.summary["stages"][0]["params"]["trainable"] == 16010
    assert "Trainable params: 16,010" in (result.run_dir / "model_summary.txt").read_text()


def test_batch_norm_of_frozen_parts_can_keep_training_its_statistics(tiny_cifar, tmp_path, source_run):
    cfg = cfg_of(f"model.pretrained={source_run}", "stages=[{epochs: 1, trainable: head}]", "model.frozen_bn=train",
                 epochs=1)
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    before, after = load_file(str(source_run / "model.safetensors")), load_file(str(result.run_dir / "model.safetensors"))
    moved = [k for k in before if k.endswith("running_mean") and not torch.equal(before[k], after[k])]
    assert moved, "with frozen_bn=train the moving statistics follow the new data"
    assert all(torch.equal(before[k], after[k]) for k in before if k.endswith(".weight") and "classifier" not in k)


def test_a_new_head_is_declared_and_sized_from_the_data(tiny_cifar, tmp_path, source_run):
    cfg = cfg_of(f"model.pretrained={source_run}", "model.head={hidden: [16], batch_norm: true, dropout: 0.5}",
                 "stages=[{epochs: 1, trainable: head}, {epochs: 1, trainable: all, lr: 0.0001}]")
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    weights = load_file(str(result.run_dir / "model.safetensors"))
    assert weights["head.5.weight"].shape == (10, 16) and "head.3.running_mean" in weights
    first, second = result.summary["stages"]
    width = feature_width(create_model("cnn004"), 3, 32)
    assert first["params"]["trainable"] == width * 16 + 16 + 2 * 16 + 16 * 10 + 10
    assert second["params"]["trainable"] > first["params"]["trainable"]
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["stage 1", "stage 2"] and rows[1]["lr"] < rows[0]["lr"]


@pytest.mark.parametrize("stop_at", [5, 7])   # the last step of stage 1, and inside stage 2
def test_stages_switch_at_their_step_and_resume_across_the_boundary(tiny_cifar, tmp_path, source_run, stop_at):
    # 180 train images, batch 16: 12 steps an epoch; stage 1 is 5 steps (mid-epoch), stage 2 the rest.
    stages = "stages=[{steps: 5, trainable: head, optimizer: sgd, lr: 0.01}, {epochs: 2, trainable: all, body_lr: 0.0001}]"
    cfg = cfg_of(f"model.pretrained={source_run}", stages, "schedule.name=cosine")
    ref = train(cfg, runs_dir=tmp_path / "ref", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert ref.summary["epochs"] == 3   # 5 + 24 steps at 12 an epoch
    # exactly the 29 steps asked for: the third epoch is a partial one of 5 steps
    assert torch.load(ref.run_dir / "checkpoints" / "last.pt", weights_only=True)["state"]["global_step"] == 29
    first = train(cfg, runs_dir=tmp_path / "cut", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None,
                  callbacks=[StopAt(stop_at)])
    assert first.status == "interrupted"
    ckpt = torch.load(first.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["state"]["global_step"] == stop_at and ckpt["optimizer_stage"] == (0 if stop_at <= 5 else 1)
    done = train(None, resume=first.run_dir, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert done.status == "completed"
    a, b = load_file(str(ref.run_dir / "model.safetensors")), load_file(str(first.run_dir / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resume across a stage boundary is bitwise"
    strip = lambda run: [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "images_per_sec")}  # noqa: E731
                         for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert strip(first.run_dir) == strip(ref.run_dir)


def test_a_missing_source_recipe_gives_the_command_that_trains_it(tiny_cifar, tmp_path):
    recipe = tmp_path / "src-recipe.yaml"
    recipe.write_text("name: my-source\nepochs: 1\n")
    cfg = cfg_of(f"model.pretrained={{recipe: {recipe}}}")
    with pytest.raises(SourceMissing, match=f"cnnlab train {recipe} --runs-dir {tmp_path / 'runs'}"):
        train(cfg, runs_dir=tmp_path / "runs", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)


def test_a_source_recipe_resolves_to_its_newest_finished_run(tiny_cifar, tmp_path):
    recipe = tmp_path / "src-recipe.yaml"
    recipe.write_text((REPO / "recipes" / "004-a.yaml").read_text().replace("name: 004-a", "name: my-source"))
    runs = tmp_path / "runs"
    src = train(load_experiment(recipe, tiny_overrides(epochs=1)), runs_dir=runs, data_dir=str(tiny_cifar),
                quiet=True, log=lambda s: None)
    lines = []
    cfg = cfg_of(f"model.pretrained={{recipe: {recipe}}}", "stages=[{epochs: 1, trainable: head}]")
    result = train(cfg, runs_dir=runs, data_dir=str(tiny_cifar), quiet=True, log=lines.append)
    assert any(str(src.run_dir) in line and "loaded" in line for line in lines), lines
    assert result.status == "completed"
    # the record names the exact source run, not the recipe (which may have newer runs later)
    saved = load_experiment(result.run_dir / "config.yaml")
    assert saved.model.pretrained == str(src.run_dir), saved.model.pretrained


def test_with_sources_trains_the_source_recipe_first(tiny_cifar, tmp_path):
    from engine_helpers import run_cli

    recipe = tmp_path / "src-recipe.yaml"
    recipe.write_text("name: my-source\nepochs: 1\nbatch_size: 32\nthreads: 1\nmodel: {name: cnn004}\n"
                      "data: {name: cifar10, val_size: 20, download: false}\n")
    target = tmp_path / "target.yaml"
    target.write_text(f"name: target\nepochs: 1\nbatch_size: 32\nthreads: 1\ndata: {{val_size: 20, download: false}}\n"
                      f"model: {{name: cnn004, pretrained: {{recipe: {recipe}}}}}\n"
                      f"stages: [{{epochs: 1, trainable: head}}]\n")
    runs = tmp_path / "runs"
    proc = run_cli("train", str(target), "--runs-dir", str(runs), "--data-dir", str(tiny_cifar), "-q", "--no-report")
    assert proc.returncode == 1 and f"cnnlab train {recipe}" in proc.stderr and "--with-sources" in proc.stderr
    proc = run_cli("train", str(target), "--runs-dir", str(runs), "--data-dir", str(tiny_cifar), "-q", "--no-report",
                   "--with-sources", timeout=300)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name.split("-", 2)[-1] for p in runs.iterdir() if p.is_dir())
    assert names == ["my-source", "target"]


def test_inputs_are_resized_inside_the_model_and_ema_copies_keep_it():
    import copy

    from cnnlab.train.experiment import ModelConfig
    from cnnlab.train.setup import build_model

    cfg = ModelConfig(name="mobilenetv2", kwargs={}, resize_to=64, head=None)
    model = build_model(cfg, num_classes=10, input_size=32).eval()
    seen = []
    model.features[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1]))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        copy.deepcopy(model)(x)
    assert out.shape == (2, 10) and seen == [64, 64]
    from cnnlab.train.experiment import HeadConfig

    with_head = build_model(ModelConfig(name="mobilenetv2", resize_to=64, head=HeadConfig(hidden=[8])), num_classes=3)
    assert with_head.eval()(x).shape == (2, 3)


@pytest.mark.parametrize("recipe", ["000-c", "000-e", "000-f", "001-c", "002-d", "003-d", "003-e", "003-e-offline", "004-e",
                                    "000-c-offline", "000-e-offline", "000-f-offline", "001-c-offline", "002-d-offline",
                                    "003-d-offline", "004-e-offline"])
def test_transfer_recipes_build_and_name_existing_modules(recipe):
    """Every stage's trainable names exist in the recipe's model (weights not downloaded here)."""
    from cnnlab.train.setup import build_model

    cfg = load_experiment(REPO / "recipes" / f"{recipe}.yaml")
    model_cfg = cfg.model
    model_cfg.pretrained = None
    classes = 200 if cfg.data.name == "tiny_imagenet" else 2 if cfg.data.name == "folder" else 10
    model = build_model(model_cfg, num_classes=classes, input_size=cfg.data.image_size or 32)
    plan = plan_stages(cfg.stages, 100, cfg.epochs, cfg.optimizer)
    counts = stage_counts(model, plan)
    assert all(0 < c["params"]["trainable"] <= c["params"]["total"] for c in counts)
    if recipe == "000-c":
        assert counts[0]["params"]["trainable"] == 5130 and counts[0]["params"]["total"] == 15_001_418
    if recipe == "000-c-offline":   # the README's "650 trainable of 271,098"
        assert counts[0]["params"]["trainable"] == 650 and counts[0]["params"]["total"] == 271_098
    if recipe == "004-e":
        assert counts[0]["params"]["total"] == 2_787_914 and counts[0]["params"]["trainable"] == 2_787_402
