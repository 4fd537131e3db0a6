"""Knowledge distillation (`distill`): the loss, the teacher's inputs, and a distilled run on the one loop."""
import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cnnlab.data import Normalizer
from cnnlab.pipeline import train_sources
from cnnlab.train import teacher as teacher_mod
from cnnlab.train.experiment import experiment_to_yaml, load_experiment
from cnnlab.train.losses import distillation_loss
from engine_helpers import train_experiment as train
from cnnlab.transfer import SourceMissing
from cnnlab.train.teacher import TeacherError
from engine_helpers import REPO, StopAt, tiny_overrides


def test_alpha_zero_is_the_labels_loss_and_a_perfect_copy_costs_nothing():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert torch.allclose(distillation_loss(s, t, y, 4.0, 0.0, 0.1), F.cross_entropy(s, y, label_smoothing=0.1))
    assert distillation_loss(t, t, y, 3.0, 1.0).abs().item() < 1e-6


def test_the_soft_term_is_t_squared_kl_from_the_teacher():
    torch.manual_seed(1)
    s, t, y, T = torch.randn(6, 4), torch.randn(6, 4), torch.randint(0, 4, (6,)), 2.5
    p_t, p_s = torch.softmax(t / T, 1), torch.softmax(s / T, 1)
    by_hand = (p_t * (p_t.log() - p_s.log())).sum(1).mean() * T * T
    ce = F.cross_entropy(s, y)
    assert torch.allclose(distillation_loss(s, t, y, T, 0.7), 0.3 * ce + 0.7 * by_hand, atol=1e-6)


def test_a_sigmoid_head_distills_as_two_classes_and_only_the_student_gets_gradients():
    s = torch.tensor([[0.5], [-1.0]], requires_grad=True)
    t = torch.tensor([[2.0], [-0.5]], requires_grad=True)
    y = torch.tensor([1, 0])
    T = 2.0
    q_t, q_s = torch.sigmoid(t.detach() / T), torch.sigmoid(s.detach() / T)
    kl = (q_t * (q_t / q_s).log() + (1 - q_t) * ((1 - q_t) / (1 - q_s)).log()).mean() * T * T
    loss = distillation_loss(s, t, y, T, 1.0)
    assert torch.allclose(loss.detach(), kl, atol=1e-6)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_the_teacher_sees_the_pixels_the_student_sees_whatever_its_normalization():
    pixels = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    student = Normalizer.fit("per_channel", pixels)
    for kind in ("unit", "zscore", "imagenet", "per_channel"):
        own = Normalizer.fit(kind, pixels[:2])
        scale, shift = teacher_mod._input_map(student, own, torch.device("cpu"))
        mapped = student(pixels) if scale is None else torch.addcmul(shift, student(pixels), scale)
        assert torch.allclose(mapped, own(pixels), atol=1e-4), kind
    assert teacher_mod._input_map(student, student, torch.device("cpu")) == (None, None)


def _recipe(tmp_path, name: str):
    """004-a at the tiny settings, saved as a recipe of its own name (what --with-sources reads)."""
    path = tmp_path / f"{name}.yaml"
    cfg = load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides() + [f"name={name}"])
    path.write_text(experiment_to_yaml(cfg))
    return path


@pytest.fixture(scope="module")
def teacher_setup(tiny_cifar, tmp_path_factory):
    """A teacher recipe, its runs folder and its one finished run."""
    tmp = tmp_path_factory.mktemp("distill")
    teacher_recipe = _recipe(tmp, "my-teacher")
    runs = tmp / "runs"
    student = load_experiment(REPO / "recipes" / "004-a.yaml",
                              tiny_overrides() + [f"distill.teacher={{recipe: {teacher_recipe}}}"])
    with pytest.raises(SourceMissing, match=f"distill.teacher: no finished run of {teacher_recipe}"):
        train(student, runs_dir=runs, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert not runs.exists() or not any(runs.iterdir()), "a bad start leaves no run folder"
    teacher_run = train(load_experiment(teacher_recipe), runs_dir=runs, data_dir=str(tiny_cifar),
                        quiet=True, log=lambda s: None).run_dir
    return teacher_recipe, runs, teacher_run


def test_with_sources_trains_the_teacher_recipe(tiny_cifar, tmp_path):
    teacher_recipe = _recipe(tmp_path, "t2")
    student = load_experiment(REPO / "recipes" / "004-a.yaml",
                              tiny_overrides(epochs=1) + [f"distill.teacher={{recipe: {teacher_recipe}}}"])
    done = train_sources(student, tmp_path / "runs", data_dir=str(tiny_cifar), quiet=True, report=False,
                         log=lambda s: None)
    assert [json.loads((r.run_dir / "summary.json").read_text())["name"] for r in done] == ["t2"]


def test_a_distilled_run_calls_the_teacher_every_step_and_records_which(tiny_cifar, teacher_setup, monkeypatch):
    teacher_recipe, runs, teacher_run = teacher_setup
    calls = []
    original = teacher_mod.Teacher.__call__

    def counting(self, x):
        out = original(self, x)
        calls.append((x.shape[0], out.shape, out.requires_grad))
        return out

    monkeypatch.setattr(teacher_mod.Teacher, "__call__", counting)
    lines = []
    cfg = load_experiment(REPO / "recipes" / "004-a.yaml",
                          tiny_overrides() + [f"distill.teacher={{recipe: {teacher_recipe}}}", "distill.alpha=1.0"])
    result = train(cfg, runs_dir=runs, data_dir=str(tiny_cifar), quiet=True, log=lines.append)
    assert result.status == "completed"
    # 180 training images, batch 16: 11 full steps and one of 4, for 2 epochs
    assert len(calls) == 24 and calls[0] == (16, torch.Size([16, 10]), False)
    assert any(str(teacher_run) in line and "distilling" in line for line in lines), lines
    saved = (result.run_dir / "config.yaml").read_text()
    assert f"teacher: {teacher_run}" in saved and "recipe:" not in saved.split("distill:")[1]
    assert cfg.distill.teacher.recipe == str(teacher_recipe), "the caller's config is left as it was"
    plain = train(load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides()), runs_dir=runs,
                  data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    loss = lambda run: [json.loads(x)["train_loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert loss(result.run_dir) != loss(plain.run_dir)


def test_a_distilled_run_resumes_exactly(tiny_cifar, teacher_setup, tmp_path):
    _, _, teacher_run = teacher_setup
    over = tiny_overrides(epochs=2) + [f"distill.teacher={teacher_run}", "distill.temperature=2"]
    cfg = load_experiment(REPO / "recipes" / "004-a.yaml", over)
    ref = train(cfg, runs_dir=tmp_path / "ref", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    cut = train(cfg, runs_dir=tmp_path / "cut", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None,
                callbacks=[StopAt(7)])
    assert cut.status == "interrupted"
    done = train(None, resume=cut.run_dir, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert done.status == "completed"
    a, b = load_file(str(ref.run_dir / "model.safetensors")), load_file(str(cut.run_dir / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_teacher_of_other_classes_or_unfinished_is_refused_before_a_run_folder(tiny_cifar, teacher_setup, tmp_path):
    _, _, teacher_run = teacher_setup
    other = tmp_path / "other-classes"
    shutil.copytree(teacher_run, other)
    summary = json.loads((other / "summary.json").read_text())
    summary["classes"] = list(reversed(summary["classes"]))
    (other / "summary.json").write_text(json.dumps(summary))
    unfinished = tmp_path / "unfinished"
    shutil.copytree(teacher_run, unfinished)
    (unfinished / "model.safetensors").unlink()
    for folder, message in [(other, "same classes in the same order"), (unfinished, "must have finished"),
                            (tmp_path / "nowhere", "no such run folder")]:
        cfg = load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides() + [f"distill.teacher={folder}"])
        with pytest.raises(TeacherError, match=message):
            train(cfg, runs_dir=tmp_path / "runs", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
