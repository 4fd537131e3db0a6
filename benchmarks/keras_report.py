"""Train a report's own Keras recipe to its last epoch, score the CIFAR-10 test set, print one JSON line.

The Keras side of benchmarks/time_to_accuracy.py: "how long does the report's recipe take in the
framework the report used". Runs in its own venv, never the project's:
    python3 -m venv benchmarks/.venv-keras
    benchmarks/.venv-keras/bin/pip install tensorflow-cpu keras
    benchmarks/.venv-keras/bin/python benchmarks/keras_report.py --experiment 004-a

Recipes, as the reports (../shared/SPEC.md) and cnnlab's recipes/<id>.yaml state them:
  004-a  the 82,346-param CNN (Conv -> ReLU -> BN), all 50,000 train images scaled /255, Adam 1e-3,
         batch 64, 10 epochs; the report: 78.05% test.
  001-d  the Keras cifar10_cnn layout, model 2 (1,250,858 params), the first 40,000 train images
         (the report's 40,000/10,000/10,000 split), RMSprop 1e-4 with Keras 2's decay 1e-6 per step
         (lr / (1 + 1e-6 * step)), batch 32, 50 epochs; the report: 73.83% test.
The validation split the reports watched does not change the weights, so it is not scored here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Backend and log level must be set before keras/tensorflow are imported.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's info banners off stderr

from cifar_pickles import (DEFAULT_DATA_DIR, NUM_CLASSES, CifarDataError, load_cifar10_test,  # noqa: E402
                           load_cifar10_train)


@dataclass(frozen=True)
class KerasRecipe:
    """One report's training recipe: data size, optimizer, batch, epochs, and the number it reported."""
    train_images: int
    batch_size: int
    epochs: int
    reported_test_accuracy: float  # fraction, from ../shared/SPEC.md
    params: int  # Keras's count (BatchNorm moving statistics included)


RECIPES = {
    "004-a": KerasRecipe(train_images=50_000, batch_size=64, epochs=10, reported_test_accuracy=0.7805, params=82_346),
    "001-d": KerasRecipe(train_images=40_000, batch_size=32, epochs=50, reported_test_accuracy=0.7383, params=1_250_858),
}


def build_model(keras, experiment: str):
    """The report's network as its Keras summary lists it."""
    layers = keras.layers
    if experiment == "004-a":
        from keras_004a import build_model_004a
        return build_model_004a(keras)
    if experiment == "001-d":
        # Keras's cifar10_cnn example: in each pair the first conv is "same", the second "valid".
        return keras.Sequential([
            keras.Input(shape=(32, 32, 3)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.25),  # model 2's addition
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ])
    raise ValueError(f"unknown experiment {experiment!r}; choose from {sorted(RECIPES)}")


def build_optimizer(keras, experiment: str):
    """The report's optimizer; Keras 2's `decay` argument is Keras 3's InverseTimeDecay with one-step units."""
    if experiment == "004-a":
        return keras.optimizers.Adam(learning_rate=1e-3)
    schedule = keras.optimizers.schedules.InverseTimeDecay(1e-4, decay_steps=1, decay_rate=1e-6)
    return keras.optimizers.RMSprop(learning_rate=schedule)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a report's Keras recipe and score the test set.")
    parser.add_argument("--experiment", choices=sorted(RECIPES), required=True)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder holding cifar-10-batches-py/ (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op CPU threads (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipe's epochs (tests only: the benchmark runs the recipe's own)")
    parser.add_argument("--num-images", type=int, default=None,
                        help="override the recipe's train images (tests only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate, print the JSON line; returns the exit code."""
    args = build_parser().parse_args(argv)
    recipe = RECIPES[args.experiment]
    epochs = args.epochs or recipe.epochs
    num_images = args.num_images or recipe.train_images
    started = time.perf_counter()

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)  # before TF's first op
    keras.utils.set_random_seed(args.seed)
    try:
        images, labels = load_cifar10_train(args.data_dir, num_images)
        test_images, test_labels = load_cifar10_test(args.data_dir)
    except CifarDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    model = build_model(keras, args.experiment)
    model.compile(optimizer=build_optimizer(keras, args.experiment), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    fit_start = time.perf_counter()
    history = model.fit(images, keras.utils.to_categorical(labels, NUM_CLASSES), batch_size=recipe.batch_size,
                        epochs=epochs, shuffle=True, verbose=0)
    fit_seconds = time.perf_counter() - fit_start
    probabilities = model.predict(test_images, batch_size=500, verbose=0)
    test_accuracy = float((probabilities.argmax(axis=1) == test_labels).mean())

    record = {
        "framework": "keras",
        "experiment": args.experiment,
        "train_images": num_images,
        "epochs": epochs,
        "batch_size": recipe.batch_size,
        "params": int(model.count_params()),
        "fit_seconds": round(fit_seconds, 2),
        "script_seconds": round(time.perf_counter() - started, 2),
        "test_accuracy": test_accuracy,
        "final_train_accuracy": float(history.history["accuracy"][-1]),
        "reported_test_accuracy": recipe.reported_test_accuracy,
        "threads": args.threads,
        "seed": args.seed,
        "python": platform.python_version(),
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
    }
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
