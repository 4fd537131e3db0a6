"""Superclass (coarse) accuracy of a fine-label CIFAR-100 run: each fine prediction mapped to its
superclass with the publisher's fine -> coarse pairs read from the test file."""
import pickle, sys
import numpy as np
run, root = sys.argv[1], sys.argv[2]
with open(f"{root}/cifar-100-python/test", "rb") as f:
    test = pickle.load(f, encoding="latin1")
fine, coarse = np.array(test["fine_labels"]), np.array(test["coarse_labels"])
to_coarse = np.zeros(100, int); to_coarse[fine] = coarse
z = np.load(f"{run}/predictions/test.npz")
assert (fine[z["indices"]] == z["labels"]).all(), "predictions do not line up with the test file"
pred = z["probs"].argmax(1)
print(f"fine acc {np.mean(pred == z['labels']):.4f}  coarse acc {np.mean(to_coarse[pred] == coarse[z['indices']]):.4f}")
