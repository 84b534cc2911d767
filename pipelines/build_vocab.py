"""Learns a WordPiece vocabulary from raw text files.

    python -m pipelines.build_vocab --input_file=corpus.txt --vocab_size=8000 \
        --num_unused=100 --do_lower_case=true --output_file=vocab.txt

Writes `vocab.txt` of exactly `--vocab_size` tokens (fewer only when the corpus has no
more pieces): the special tokens first, then `[unused0]` … `[unused{N-1}]`, then the
alphabet and the learned pieces. Beside it, `text_config.json` (casing and the
vocabulary's fingerprint) for the later stages to check. Prints the true count.
"""

import os

from absl import flags

from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_list("input_file", None, "Text files (comma separated; globs allowed).")
flags.DEFINE_integer("vocab_size", 30522,
                     "Vocabulary size, everything included: never exceeded, and reached "
                     "when the corpus has that many pieces.")
flags.DEFINE_integer("num_unused", 0,
                     "[unusedN] slots reserved right after the special tokens, "
                     "counted inside --vocab_size.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents.")
flags.DEFINE_string("output_file", None, "Path of the vocabulary to write.")
flags.DEFINE_integer("max_unique_chars", 1000, "Largest alphabet kept.")
flags.mark_flags_as_required(["input_file", "output_file"])


def main(argv):
    del argv
    import glob

    # Here, not at the top: `--help` answers without importing TensorFlow.
    from keras_bert_app import names
    from keras_bert_app.text.text_config import TextConfig
    from keras_bert_app.text.vocab_learning import learn_vocab, write_vocab

    files = sorted({f for pattern in FLAGS.input_file for f in (glob.glob(pattern) or [pattern])})
    tokens = learn_vocab(files, FLAGS.vocab_size, FLAGS.do_lower_case,
                         num_unused=FLAGS.num_unused, max_unique_chars=FLAGS.max_unique_chars)
    write_vocab(tokens, FLAGS.output_file)
    config = TextConfig.for_vocab(FLAGS.output_file, FLAGS.do_lower_case)
    config.to_json_file(os.path.join(os.path.dirname(os.path.abspath(FLAGS.output_file)),
                                     names.TEXT_CONFIG_FILE))
    print(f"Wrote {len(tokens)} tokens to {FLAGS.output_file} "
          f"(--vocab_size={FLAGS.vocab_size}, {FLAGS.num_unused} [unusedN] slots)")
    if len(tokens) < FLAGS.vocab_size:
        print(f"Fewer than --vocab_size={FLAGS.vocab_size}: the corpus has no more "
              "pieces to learn (the learner kept every piece it saw).")


if __name__ == "__main__":
    run(main)
