"""Converts an existing BERT checkpoint into a pre-trained model directory.

    python -m pipelines.convert_checkpoint --source_format=hf \
        --input_path=HF_DIR --output_dir=MODEL_DIR
    python -m pipelines.convert_checkpoint --source_format=tf1 \
        --input_path=uncased_L-12_H-768_A-12 --do_lower_case=true --output_dir=MODEL_DIR

A source that lacks any encoder weight is an error (exit status 2, the import report
on stderr) and nothing is written; missing pre-training heads are a warning.
"""

import sys

from absl import flags

from pipelines.errors import run

# The library's `checkpoints.SOURCE_FORMATS`, written out: importing the library
# imports TensorFlow, which `--help` must not wait for (tests/pipelines/
# flag_choices_test.py checks that the two agree).
SOURCE_FORMATS = ("hf", "tf1")

FLAGS = flags.FLAGS
flags.DEFINE_enum("source_format", None, list(SOURCE_FORMATS),
                  "hf: a Hugging Face BERT directory; tf1: Google's bert_model.ckpt release.")
flags.DEFINE_string("input_path", None, "The source directory (or TF1 checkpoint prefix).")
flags.DEFINE_string("output_dir", None, "The model directory to write.")
flags.DEFINE_bool("do_lower_case", None,
                  "Casing of the vocabulary; required for tf1, read from "
                  "tokenizer_config.json for hf.")
flags.mark_flags_as_required(["source_format", "input_path", "output_dir"])


def main(argv):
    del argv
    from keras_bert_app.checkpoints import convert_checkpoint

    report = convert_checkpoint(FLAGS.source_format, FLAGS.input_path, FLAGS.output_dir,
                                do_lower_case=FLAGS.do_lower_case)
    print(report.format())
    if report.missing_heads:
        print(f"warning: the source lacks {len(report.missing_heads)} pre-training head "
              "weights (listed above); they start from their initial values (fine for "
              "fine-tuning; the masked-LM / NSP outputs are not the source's).",
              file=sys.stderr)
    print(f"Wrote the model directory {FLAGS.output_dir}")


if __name__ == "__main__":
    run(main)
