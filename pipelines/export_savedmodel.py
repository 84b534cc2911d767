"""Exports a SavedModel.

    python -m pipelines.export_savedmodel --export_type=preprocessing \
        --vocab_file=vocab.txt --do_lower_case=true --default_seq_length=128 \
        --export_path=saved_models/preprocessing

    python -m pipelines.export_savedmodel --export_type=preprocessing \
        --init_model_dir=MODEL_DIR --export_path=saved_models/preprocessing
"""

from absl import flags

from pipelines.errors import run

from keras_bert_app.export import build_preprocessor, export_preprocessing

FLAGS = flags.FLAGS
flags.DEFINE_enum("export_type", "preprocessing", ["preprocessing"],
                  "What to export. Encoder and task exports are not available yet.")
flags.DEFINE_string("export_path", None, "Directory of the SavedModel to write.")
flags.DEFINE_string("init_model_dir", None,
                    "Pre-trained model directory (vocab.txt + text_config.json).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary, one token per line.")
flags.DEFINE_bool("do_lower_case", None,
                  "Lower-case and strip accents; required with --vocab_file, taken from "
                  "the model directory with --init_model_dir.")
flags.DEFINE_integer("default_seq_length", 128, "Output length of the root call.")
flags.DEFINE_enum("truncation", "round_robin", ["round_robin", "waterfall"],
                  "How segments are cut to fit the sequence length.")
flags.mark_flag_as_required("export_path")


def main(argv):
    del argv
    preprocessor = build_preprocessor(
        vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
        init_model_dir=FLAGS.init_model_dir,
        default_seq_length=FLAGS.default_seq_length, truncation=FLAGS.truncation)
    export_preprocessing(FLAGS.export_path, preprocessor)
    print(f"Wrote the preprocessing SavedModel to {FLAGS.export_path}")


if __name__ == "__main__":
    run(main)
