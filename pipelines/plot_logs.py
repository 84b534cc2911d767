"""Draws a model directory's TensorBoard logs as PNG pictures.

Training and evaluation curves (loss, accuracies, learning rate) of any
run_pretraining or run_classifier `--model_dir`, and the confusion matrix of a
single-label classifier's evaluation set:

    python -m pipelines.plot_logs --model_dir=MODEL_DIR [--output_dir=MODEL_DIR/plots]

Prints the path of every picture written.
"""

from absl import flags

from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None,
                    "The --model_dir of a training run (logs/train, logs/eval inside).")
flags.DEFINE_string("output_dir", None, "Where to write the PNGs; default MODEL_DIR/plots.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    from keras_bert_app.plots import plot_model_dir  # not at the top: a fast --help

    for path in plot_model_dir(FLAGS.model_dir, FLAGS.output_dir):
        print(path)


if __name__ == "__main__":
    run(main)
