"""Scratch: fast-cpu with airbench-style Lookahead via a callback (experiment only)."""
import sys, torch
from cnnlab.train.experiment import load_experiment
from cnnlab.train.loop import train
from cnnlab.train.callbacks import Callback

class LA(Callback):
    def __init__(self, every=5, decay=0.95**5, ramp=3.0):
        self.every, self.decay, self.ramp = every, decay, ramp
    def on_train_begin(self, logs):
        self.model = logs["model"]; self.total = logs["epochs"] * logs["steps_per_epoch"]; self.t = 0
        self.slow = {k: v.detach().clone() for k, v in self.model.state_dict().items() if v.dtype.is_floating_point}
    @torch.no_grad()
    def _sync(self, decay):
        sd = self.model.state_dict()
        for k, s in self.slow.items():
            s.lerp_(sd[k], 1 - decay); sd[k].copy_(s)
    def on_batch_end(self, step, logs):
        self.t += 1
        if self.t == self.total:
            self._sync(1.0)
        elif self.t % self.every == 0:
            self._sync(self.decay * (self.t / self.total) ** self.ramp)

overrides = sys.argv[1:]
cfg = load_experiment("recipes/fast-cpu.yaml", overrides)
train(cfg, runs_dir="/work/exp/runs", data_dir="/work/data", callbacks=[LA()])
