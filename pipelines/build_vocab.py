"""Learns a WordPiece vocabulary from raw text files.

    python -m pipelines.build_vocab --input_file=corpus.txt --vocab_size=8000 \
        --do_lower_case=true --output_file=vocab.txt

Writes `vocab.txt` (special tokens first) and, beside it, `text_config.json` (casing and
the vocabulary's fingerprint) for the later stages to check.
"""

import os

from absl import flags

from pipelines.errors import run

from keras_bert_app import names
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.vocab_learning import learn_vocab, write_vocab

FLAGS = flags.FLAGS
flags.DEFINE_list("input_file", None, "Text files (comma separated; globs allowed).")
flags.DEFINE_integer("vocab_size", 30522, "Largest vocabulary size.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents.")
flags.DEFINE_string("output_file", None, "Path of the vocabulary to write.")
flags.DEFINE_integer("max_unique_chars", 1000, "Largest alphabet kept.")
flags.mark_flags_as_required(["input_file", "output_file"])


def main(argv):
    del argv
    import glob

    files = sorted({f for pattern in FLAGS.input_file for f in (glob.glob(pattern) or [pattern])})
    tokens = learn_vocab(files, FLAGS.vocab_size, FLAGS.do_lower_case,
                         max_unique_chars=FLAGS.max_unique_chars)
    write_vocab(tokens, FLAGS.output_file)
    config = TextConfig.for_vocab(FLAGS.output_file, FLAGS.do_lower_case)
    config.to_json_file(os.path.join(os.path.dirname(os.path.abspath(FLAGS.output_file)),
                                     names.TEXT_CONFIG_FILE))
    print(f"Wrote {len(tokens)} tokens to {FLAGS.output_file}")


if __name__ == "__main__":
    run(main)
