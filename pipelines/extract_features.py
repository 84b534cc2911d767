"""Per-token features (Google's `extract_features.py`) or sentence embeddings of the
lines of a text file, from any model directory (pre-trained or fine-tuned).

Input: one example per line, `text_a` or `text_a ||| text_b`. Per-token vectors of
the chosen layers, Google's JSON lines (`linex_index`, `features`: `token`, `layers`:
`index`, `values`):

    python -m pipelines.extract_features --init_model_dir=MODEL_DIR \
        --input_file=input.txt --output_file=features.jsonl \
        --layers=-1,-2,-3,-4 --max_seq_length=128 --batch_size=8

Sentence embeddings (last layer, mean over real tokens or the [CLS] vector,
optionally L2-normalised), float32 [lines, hidden] in the input's order, as `.npy`
(or JSON lines `{"linex_index", "embedding"}` for `.jsonl`):

    python -m pipelines.extract_features --init_model_dir=MODEL_DIR \
        --input_file=sentences.txt --output_file=embeddings.npy \
        --pooling=mean --normalize
"""

import os

# The encoder runs in TensorFlow graphs (with the in-graph tokenizer), whatever
# KERAS_BACKEND the environment sets (set before Keras loads).
os.environ["KERAS_BACKEND"] = "tensorflow"

from absl import flags  # noqa: E402

from pipelines.errors import run  # noqa: E402

# The library's `feature_extraction.DEFAULT_LAYERS` and `POOLING_MODES`, written out:
# importing the library imports TensorFlow, which `--help` must not wait for
# (tests/pipelines/flag_choices_test.py checks that they agree).
DEFAULT_LAYERS, POOLING_MODES = (-1, -2, -3, -4), ("cls", "mean")

FLAGS = flags.FLAGS
flags.DEFINE_string("input_file", None,
                    "Text file, one example per line: text_a, or text_a ||| text_b.")
flags.DEFINE_string("output_file", None,
                    "Where to write: .jsonl/.json (JSON lines), or .npy for pooled "
                    "embeddings (float32 [lines, hidden]).")
flags.DEFINE_string("init_model_dir", None,
                    "Model directory, pre-trained (convert_checkpoint, run_pretraining) "
                    "or fine-tuned (its encoder, without the task head).")
flags.DEFINE_string("layers", ",".join(map(str, DEFAULT_LAYERS)),
                    "Per-token features: the layers to write, comma-separated; -1 is "
                    "the last transformer layer, 0 the first. Not with --pooling.")
flags.DEFINE_enum("pooling", None, list(POOLING_MODES),
                  "Write one sentence embedding per line instead of per-token "
                  "features: the last layer's mean over real tokens, or its [CLS] "
                  "vector.")
flags.DEFINE_bool("normalize", False,
                  "With --pooling: scale each embedding to unit L2 norm (cosine "
                  "similarity is then a dot product).")
flags.DEFINE_integer("max_seq_length", 128,
                     "Word pieces per example, special tokens included; longer ones are "
                     "truncated (pairs: the longer text first).")
flags.DEFINE_integer("batch_size", 32, "Examples per encoder call.")
flags.mark_flags_as_required(["input_file", "output_file", "init_model_dir"])


def main(argv):
    del argv
    from keras_bert_app.feature_files import extract_features

    # --layers has a default for per-token features; with --pooling it is an error
    # only when given.
    layers = FLAGS.layers if FLAGS.pooling is None or FLAGS["layers"].present else None
    summary = extract_features(
        FLAGS.input_file, FLAGS.output_file, FLAGS.init_model_dir, layers=layers,
        pooling=FLAGS.pooling, normalize=FLAGS.normalize,
        max_seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size)
    counts = f"{summary['examples']} examples ({summary['pairs']} pairs)"
    if summary["pooling"]:
        normalized = " normalized" if summary["normalize"] else ""
        print(f"Wrote {summary['pooling']}-pooled{normalized} embeddings of {counts}, "
              f"float32 {summary['shape']}, to {summary['output_file']}")
    else:
        print(f"Wrote per-token features of layers {summary['layers']} of {counts} to "
              f"{summary['output_file']}")


if __name__ == "__main__":
    run(main)
