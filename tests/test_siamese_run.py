"""Siamese runs on the one training loop (report 002-c): exact resume, learning, the evaluation page.

Tiny runs: the learnable 180-image CIFAR of engine_helpers, batch 16 (12 steps an epoch), 24 steps,
the small cnn004 network as the twin's body (convnet002's 5x5 convs cost seconds a step here).
"""
import json

import pytest
import torch
from safetensors.torch import load_file

import cnnlab.siamese  # noqa: F401  (registers the task)
from cnnlab.train.experiment import load_experiment
from engine_helpers import train_experiment as train

from engine_helpers import REPO, StopAt, tiny_overrides

RECIPE = REPO / "recipes" / "002-c-full-random.yaml"
TINY = {"model.name": "cnn004", "model.kwargs": "{}", "model.init": "default", "task.embed_from": "features",
        "task.embedding_dim": 16, "stages": "[{steps: 24}]", "optimizer.lr": 0.001, "augment.hflip": "true"}


def cfg_of(**extra):
    return load_experiment(RECIPE, tiny_overrides(**{**TINY, **extra}))


def quiet_train(cfg, runs, data, **kwargs):
    return train(cfg, runs_dir=runs, data_dir=str(data), quiet=True, log=lambda s: None, **kwargs)


@pytest.fixture(scope="module")
def reference(tiny_cifar, tmp_path_factory):
    result = quiet_train(cfg_of(), tmp_path_factory.mktemp("siamese-ref"), tiny_cifar)
    assert result.status == "completed"
    return result


def rows_of(run_dir):
    return [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "images_per_sec")}
            for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_an_interrupted_siamese_run_resumes_to_bitwise_the_same_weights(tiny_cifar, tmp_path, reference):
    first = quiet_train(cfg_of(), tmp_path, tiny_cifar, callbacks=[StopAt(7)])   # mid-epoch 1 (12 steps)
    assert first.status == "interrupted"
    ckpt = torch.load(first.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["state"]["global_step"] == 7 and "pairs" in ckpt["rng"]["generators"]
    done = train(None, resume=first.run_dir, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert done.status == "completed"
    a = load_file(str(reference.run_dir / "model.safetensors"))
    b = load_file(str(first.run_dir / "model.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("head.") for k in a)
    assert not [k for k in a if not torch.equal(a[k], b[k])], "every tensor equal after the resume"
    assert rows_of(first.run_dir) == rows_of(reference.run_dir)
    assert done.summary["final"] == reference.summary["final"]


def test_a_tiny_siamese_run_learns_embeddings_that_separate_the_classes(tiny_cifar, tmp_path, reference):
    final = reference.summary["final"]
    # chance is 10%: nearest class centroid of the training embeddings on the 100 test images
    assert final["test_acc"] >= 0.9 and final["val_acc"] >= 0.9
    # random features of this easy data already sort most images, so learning shows in the loss:
    # the same fixed test pairs cost far less after 24 steps than after 24 steps at lr 1e-12
    untrained = quiet_train(cfg_of(**{"optimizer.lr": 1e-12}), tmp_path, tiny_cifar).summary["final"]
    assert final["test_loss"] < 0.5 * untrained["test_loss"]
    rows = rows_of(reference.run_dir)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and 0.9 <= rows[-1]["train_acc"] <= 1.0


def test_a_triplet_runs_train_acc_reads_what_the_twin_learned(tiny_cifar, tmp_path):
    # The pair boundary d < margin/2 read 50.0% on every triplet run; the batch nearest neighbour
    # starts near chance (10 classes) on a barely trained twin and rises as it learns.
    def train_accs(**extra):
        cfg = cfg_of(**{"task.loss": "triplet", "task.margin": 0.2, **extra})
        return [r["train_acc"] for r in rows_of(quiet_train(cfg, tmp_path, tiny_cifar).run_dir)]

    learned, untrained = train_accs(), train_accs(**{"optimizer.lr": 1e-12})
    assert learned[-1] >= 0.8 and learned[-1] != 0.5
    assert untrained[-1] < learned[-1] - 0.2


def test_the_evaluation_page(tiny_cifar, reference):
    from cnnlab.report.siamese_page import write_siamese_report

    html = write_siamese_report(reference.run_dir, data_dir=str(tiny_cifar), tsne_points=60)
    run = reference.run_dir
    assert html == run / "siamese.html"
    text, md = html.read_text(), (run / "siamese.md").read_text()
    for part in ("one-vs-rest linear SVM", "the report&#x27;s protocol", "ROC AUC", "t-SNE", "experiment 3"):
        assert part in text, part
    assert "(siamese_figures/distances.png)" in md and (run / "siamese_figures" / "tsne.png").is_file()
    numbers = json.loads((run / "siamese.json").read_text())
    assert numbers["accuracies"]["one_vs_rest_svm"] >= 0.9 and numbers["verification"]["roc_auc"] > 0.9
    # the page's centroid classifier is the run's own test_acc (all 180 training images make the centroids)
    assert numbers["accuracies"]["nearest_centroid"] == pytest.approx(reference.summary["final"]["test_acc"])


def test_the_page_refuses_a_classification_run(tiny_cifar, tmp_path):
    from cnnlab.report.siamese_page import write_siamese_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: plain\nmodel: {name: cnn004}\n")
    with pytest.raises(ValueError, match="is not a siamese run"):
        write_siamese_report(run, data_dir=str(tiny_cifar))


def test_cnnlab_train_writes_the_siamese_page_with_the_report(tiny_cifar, tmp_path):
    # the whole-experiment path (`cnnlab train`) adds siamese.html beside report.html for siamese runs
    from cnnlab.pipeline import run_experiment

    logged = []
    result = run_experiment(cfg_of(**{"stages": "[{steps: 12}]"}), runs_dir=tmp_path, data_dir=str(tiny_cifar),
                            quiet=True, log=logged.append)
    assert result.status == "completed"
    assert (result.run_dir / "report.html").is_file(), logged
    assert (result.run_dir / "siamese.html").is_file(), logged
    assert json.loads((result.run_dir / "siamese.json").read_text())["accuracies"]["nearest_centroid"] > 0.3
