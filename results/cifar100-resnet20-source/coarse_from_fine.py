"""Superclass (coarse) accuracy of a fine-label CIFAR-100 run: each fine prediction mapped to its
superclass by the publisher's fine -> coarse pairs in the test file.

    python results/cifar100-resnet20-source/coarse_from_fine.py RUN DATA_DIR
"""
import sys
from pathlib import Path

import numpy as np

from cnnlab.data.cifar import read_pickle   # the project's safe reader of the publisher's pickles

run, root = Path(sys.argv[1]), Path(sys.argv[2])
test = read_pickle(root / "cifar-100-python" / "test")
fine, coarse = np.asarray(test["fine_labels"]), np.asarray(test["coarse_labels"])
to_coarse = np.zeros(100, dtype=int)
to_coarse[fine] = coarse
saved = np.load(run / "predictions" / "test.npz")
assert (fine[saved["indices"]] == saved["labels"]).all(), "the run's test predictions do not line up with the test file"
pred = saved["probs"].argmax(1)
print(f"fine acc {np.mean(pred == saved['labels']):.4f}  "
      f"coarse acc {np.mean(to_coarse[pred] == coarse[saved['indices']]):.4f}")
