"""The data flags `create_pretraining_data` and `create_pretraining_data_beam` share
(Google's `create_pretraining_data.py` names and defaults), defined once, and the
`PretrainingDataConfig` they make."""

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents.")
flags.DEFINE_bool("do_whole_word_mask", False, "Mask whole words, not single pieces.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Most masked positions per sequence.")
flags.DEFINE_integer("random_seed", 12345, "Seed; the same seed gives the same records.")
flags.DEFINE_integer("dupe_factor", 10, "Times the input is used, with other masks.")
flags.DEFINE_float("masked_lm_prob", 0.15, "Share of tokens masked.")
flags.DEFINE_float("short_seq_prob", 0.1, "Probability of a shorter target length.")
flags.DEFINE_enum("sentence_prediction", "nsp", ["nsp", "sop", "none"],
                  "nsp: B is the next or a random segment (label 1 = random); sop: B "
                  "follows A or they are swapped (label 1 = swapped); none: single "
                  "segments, masked LM only.")


def data_config(input_files, output_files, sentence_prediction=None, **fields):
    """A `PretrainingDataConfig` from the shared flags and `fields`."""
    from keras_bert_app.data import PretrainingDataConfig

    return PretrainingDataConfig(
        input_files=tuple(input_files), output_files=tuple(output_files),
        vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob, dupe_factor=FLAGS.dupe_factor,
        short_seq_prob=FLAGS.short_seq_prob, random_seed=FLAGS.random_seed,
        do_whole_word_mask=FLAGS.do_whole_word_mask,
        sentence_prediction=sentence_prediction or FLAGS.sentence_prediction, **fields)
