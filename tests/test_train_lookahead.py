"""Lookahead (optimizer.lookahead): the pull schedule, the pull itself, and a run that uses it."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from cnnlab.train.experiment import load_experiment
from cnnlab.train.lookahead import Lookahead, lookahead_share
from cnnlab.train.loop import train
from cnnlab.train.options import LookaheadConfig
from engine_helpers import REPO, tiny_overrides


def test_share_is_zero_early_grows_with_progress_and_is_one_at_the_last_step():
    cfg = LookaheadConfig(every=5, decay=0.8, ramp=3.0)
    assert lookahead_share(4, 100, cfg) is None and lookahead_share(7, 100, cfg) is None
    assert lookahead_share(50, 100, cfg) == pytest.approx(0.8 * 0.5 ** 3)
    assert lookahead_share(5, 100, cfg) < lookahead_share(50, 100, cfg) < lookahead_share(95, 100, cfg) < 0.8
    assert lookahead_share(100, 100, cfg) == 1.0 and lookahead_share(99, 99, cfg) == 1.0   # off the every-grid too


def test_pull_moves_slow_toward_fast_and_puts_the_result_in_the_model():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    la = Lookahead(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.add_(2.0)
    la.pull(model, 0.75)
    state = model.state_dict()
    torch.testing.assert_close(state["0.weight"], start["0.weight"] + 0.25)
    torch.testing.assert_close(state["1.running_mean"], start["1.running_mean"] + 0.5)
    assert int(state["1.num_batches_tracked"]) == int(start["1.num_batches_tracked"])   # integers are left alone
    torch.testing.assert_close(la.state_dict()["0.weight"], state["0.weight"])
    la.pull(model, 1.0)   # share 1: the model goes back to the slow copy, which stays as it was
    torch.testing.assert_close(model.state_dict()["0.weight"], start["0.weight"] + 0.25)
    with pytest.raises(KeyError, match="another model"):
        la.load_state_dict({})


def test_pull_leaves_frozen_parameters_and_frozen_batch_norm_statistics_alone():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Linear(2, 2))
    la = Lookahead(model)
    for p in list(model[0].parameters()) + list(model[1].parameters()):
        p.requires_grad_(False)   # frozen after the slow copy was taken, as freeze_after does mid-run
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_var.add_(3.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    la.pull(model, 0.5)
    after = model.state_dict()
    for key in ("0.weight", "0.bias", "1.weight", "1.running_var"):
        assert torch.equal(after[key], before[key]), key
    torch.testing.assert_close(after["2.weight"], before["2.weight"] - 0.5)   # the trainable layer is pulled
    la.pull(model, 0.5)
    assert torch.equal(model.state_dict()["0.weight"], before["0.weight"])


@pytest.mark.parametrize("bad, message", [("{every: 0}", "every must be >= 1"), ("{decay: 1.0}", r"decay must be in \[0, 1\)"),
                                          ("{ramp: -1}", "ramp must be >= 0"), ("{steps: 5}", "steps")])
def test_bad_lookahead_settings_are_config_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        load_experiment(REPO / "recipes" / "004-a.yaml", [f"optimizer.lookahead={bad}"])


def test_a_run_with_lookahead_trains_and_ends_elsewhere_than_without(tiny_cifar, tmp_path):
    def run(*extra):
        cfg = load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides(epochs=2, batch_size=16) + list(extra))
        result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
        return result, load_file(str(result.run_dir / "model.safetensors"))

    plain_result, plain = run("name=plain")
    la_result, la = run("name=lookahead", "optimizer.lookahead={every: 2, decay: 0.9, ramp: 1.0}")
    assert la_result.status == "completed" and la_result.summary["final"]["test_acc"] is not None
    assert any(not torch.equal(plain[k], la[k]) for k in plain)
    assert la_result.summary["final"]["train_acc"] > 0.2   # it still learns the tiny data
