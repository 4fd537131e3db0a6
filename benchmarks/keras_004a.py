"""Train the 004-a CNN with Keras 3 (TensorFlow backend) and print one JSON line of its speed.

Runs in its own venv, never the project's:
    python3 -m venv benchmarks/.venv-keras
    benchmarks/.venv-keras/bin/pip install tensorflow-cpu keras
    benchmarks/.venv-keras/bin/python benchmarks/keras_004a.py --num-images 10000 --epochs 3
"""

from __future__ import annotations

import os
import sys

# Backend and log level must be set before keras/tensorflow are imported.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's info banners off stderr

from bench_common import (BATCH_SIZE, EpochClock, LEARNING_RATE, build_arg_parser, check_run_args,  # noqa: E402
                          print_result, result_record)
from cifar_pickles import NUM_CLASSES, CifarDataError, load_cifar10_train  # noqa: E402


def build_model_004a(keras, mixed: bool = False):
    """The 004-a network as the report's Keras summary lists it (Conv -> ReLU -> BatchNorm order).
    mixed (a mixed_bfloat16 policy): the softmax moves to its own float32 layer, as the Keras
    mixed-precision guide asks (and as torch.autocast computes the cross-entropy); it has no weights."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=(32, 32, 3)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.BatchNormalization(),
        layers.Conv2D(32, 3, activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Conv2D(64, 3, activation="relu"),
        layers.BatchNormalization(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        *([layers.Dense(NUM_CLASSES), layers.Activation("softmax", dtype="float32")] if mixed
          else [layers.Dense(NUM_CLASSES, activation="softmax")]),
    ])


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train with model.fit, print the JSON result line; returns the exit code."""
    parser = build_arg_parser("Keras 3 (TensorFlow backend) training speed on the 004-a CNN.")
    args = parser.parse_args(argv)
    check_run_args(parser, args)

    import keras
    import tensorflow as tf

    # Threads must be fixed before TensorFlow runs its first op.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    # Before the model is built: layers take their compute dtype from the global policy.
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if args.precision == "bf16" else "float32")

    try:
        images, labels = load_cifar10_train(args.data_dir, args.num_images)
    except CifarDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    one_hot = keras.utils.to_categorical(labels, NUM_CLASSES)

    model = build_model_004a(keras, mixed=args.precision == "bf16")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
                  loss="categorical_crossentropy", metrics=["accuracy"])

    clock = EpochClock()

    class EpochTimer(keras.callbacks.Callback):
        """Times each epoch inside fit, so data set-up before the first epoch is excluded."""

        def on_epoch_begin(self, epoch, logs=None):
            clock.start()

        def on_epoch_end(self, epoch, logs=None):
            clock.stop()

    history = model.fit(images, one_hot, batch_size=BATCH_SIZE, epochs=args.epochs,
                        shuffle=True, verbose=0, callbacks=[EpochTimer()])

    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    record = result_record(
        "keras", args, clock,
        params=int(model.count_params()), trainable_params=trainable,
        final_train_accuracy=float(history.history["accuracy"][-1]),
        versions={"keras": keras.__version__, "tensorflow": tf.__version__, "backend": keras.backend.backend()},
        inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        dtype_policy=keras.mixed_precision.global_policy().name,
    )
    print_result(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
