"""Exports a SavedModel.

Text-in classifier for TF Serving, from a fine-tuned model directory
(`run_classifier --model_dir`); written as the next version `EXPORT_DIR/<n>/`:

    python -m pipelines.export_savedmodel --export_type=classifier \
        --init_model_dir=MODEL_DIR --export_path=saved_models/my_classifier

Text-in SQuAD question answering (question and context in, the answer out), from a
fine-tuned SQuAD directory (`run_squad --model_dir`), also versioned:

    python -m pipelines.export_savedmodel --export_type=squad \
        --init_model_dir=MODEL_DIR --export_path=saved_models/my_squad

Text-in NER (text in; words, tags and entity spans out), from a fine-tuned NER
directory (`run_ner --model_dir`), also versioned:

    python -m pipelines.export_savedmodel --export_type=ner \
        --init_model_dir=MODEL_DIR --export_path=saved_models/my_ner

Text-in multiple choice (context, question and choices in, probabilities out), from
a fine-tuned directory (`run_multiple_choice --model_dir`), also versioned:

    python -m pipelines.export_savedmodel --export_type=multiple_choice \
        --init_model_dir=MODEL_DIR --export_path=saved_models/my_choices

Text-in sentence embedder (strings in, `embedding [batch, hidden]` out: the last
layer mean-pooled or its [CLS] vector, L2-normalised or not), from any model
directory, also versioned:

    python -m pipelines.export_savedmodel --export_type=embedder \
        --init_model_dir=MODEL_DIR --export_path=saved_models/my_embedder \
        --pooling=mean --normalize --max_seq_length=128

TF Hub-style encoder (pre-trained or fine-tuned directory), optionally with the
masked-LM head as `.mlm` (pre-trained directories), also versioned:

    python -m pipelines.export_savedmodel --export_type=encoder_with_mlm \
        --init_model_dir=MODEL_DIR --export_path=saved_models/my_encoder

Preprocessing (TF Hub preprocessing interface), written at `--export_path` itself:

    python -m pipelines.export_savedmodel --export_type=preprocessing \
        --vocab_file=vocab.txt --do_lower_case=true --default_seq_length=128 \
        --export_path=saved_models/preprocessing

    python -m pipelines.export_savedmodel --export_type=preprocessing \
        --init_model_dir=MODEL_DIR --export_path=saved_models/preprocessing
"""

import os

# A SavedModel is a TensorFlow graph: the models are traced on the TensorFlow backend,
# whatever KERAS_BACKEND the environment sets for training (set before Keras loads).
os.environ["KERAS_BACKEND"] = "tensorflow"

from absl import flags  # noqa: E402

from pipelines.errors import run  # noqa: E402

# The library's `names.MEAN_POOLING` and `names.POOLING_MODES`, written out: importing
# the library imports TensorFlow, which `--help` must not wait for (tests/pipelines/
# flag_choices_test.py checks that they agree).
MEAN_POOLING, POOLING_MODES = "mean", ("cls", "mean")

CLASSIFIER, ENCODER, ENCODER_WITH_MLM = "classifier", "encoder", "encoder_with_mlm"
SQUAD, NER, EMBEDDER = "squad", "ner", "embedder"
MULTIPLE_CHOICE = "multiple_choice"
PREPROCESSING = "preprocessing"

FLAGS = flags.FLAGS
flags.DEFINE_enum("export_type", PREPROCESSING,
                  [PREPROCESSING, CLASSIFIER, SQUAD, NER, MULTIPLE_CHOICE, EMBEDDER,
                   ENCODER, ENCODER_WITH_MLM],
                  "What to export: the text preprocessing; a fine-tuned classifier, raw "
                  "text in, answers out (TF Serving); a fine-tuned SQuAD model, question "
                  "and context in, the answer out; a fine-tuned NER model, text in, "
                  "words, tags and entity spans out; a fine-tuned multiple-choice model, "
                  "context, question and choices in, each choice's probability out; any "
                  "model's sentence embedder, text "
                  "in, an embedding out; the encoder (TF Hub interface), "
                  "with the masked-LM head as .mlm for encoder_with_mlm.")
flags.DEFINE_string("export_path", None,
                    "preprocessing: the SavedModel directory to write. Other types: the "
                    "directory of versions (TF Serving's --model_base_path); the export "
                    "becomes its next integer-named subdirectory.")
flags.DEFINE_string("init_model_dir", None,
                    "Model directory: pre-trained (vocab.txt + text_config.json suffice "
                    "for preprocessing) or fine-tuned: by run_classifier for classifier, "
                    "by run_squad for squad, by run_ner for ner, by run_multiple_choice "
                    "for multiple_choice.")
flags.DEFINE_string("vocab_file", None,
                    "preprocessing only: WordPiece vocabulary, one token per line.")
flags.DEFINE_bool("do_lower_case", None,
                  "preprocessing only: lower-case and strip accents; required with "
                  "--vocab_file, taken from the model directory with --init_model_dir.")
flags.DEFINE_integer("default_seq_length", 128,
                     "preprocessing only: output length of the root call.")
flags.DEFINE_enum("truncation", "round_robin", ["round_robin", "waterfall"],
                  "preprocessing only: how segments are cut to fit the sequence length.")
flags.DEFINE_enum("pooling", MEAN_POOLING, list(POOLING_MODES),
                  "embedder only: the last layer's mean over real tokens, or its [CLS] "
                  "vector.")
flags.DEFINE_bool("normalize", True, "embedder only: scale each embedding to unit L2 "
                  "norm.")
flags.DEFINE_integer("max_seq_length", 128, "embedder only: word pieces per text, "
                     "special tokens included.")
EMBEDDER_FLAGS = ("pooling", "normalize", "max_seq_length")
flags.mark_flag_as_required("export_path")


def main(argv):
    del argv
    from keras_bert_app.export import (build_preprocessor, export_classifier,
                                       export_embedder, export_encoder,
                                       export_multiple_choice, export_ner,
                                       export_preprocessing, export_squad)

    if FLAGS.export_type == PREPROCESSING:
        preprocessor = build_preprocessor(
            vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
            init_model_dir=FLAGS.init_model_dir,
            default_seq_length=FLAGS.default_seq_length, truncation=FLAGS.truncation)
        export_preprocessing(FLAGS.export_path, preprocessor)
        print(f"Wrote the preprocessing SavedModel to {FLAGS.export_path}")
        return
    if not FLAGS.init_model_dir:
        raise ValueError(f"--export_type={FLAGS.export_type} needs --init_model_dir.")
    preprocessing_only = [f"--{name}" for name in ("vocab_file", "do_lower_case",
                                                   "default_seq_length", "truncation")
                          if FLAGS[name].present]
    if preprocessing_only:
        raise ValueError(f"{', '.join(preprocessing_only)}: only for --export_type="
                         f"{PREPROCESSING}; a {FLAGS.export_type} export takes its text "
                         "settings and sequence length from --init_model_dir.")
    embedder_only = [f"--{name}" for name in EMBEDDER_FLAGS if FLAGS[name].present]
    if embedder_only and FLAGS.export_type != EMBEDDER:
        raise ValueError(f"{', '.join(embedder_only)}: only for --export_type={EMBEDDER}.")
    if FLAGS.export_type == CLASSIFIER:
        version_dir = export_classifier(FLAGS.export_path, model_dir=FLAGS.init_model_dir)
    elif FLAGS.export_type == SQUAD:
        version_dir = export_squad(FLAGS.export_path, model_dir=FLAGS.init_model_dir)
    elif FLAGS.export_type == NER:
        version_dir = export_ner(FLAGS.export_path, model_dir=FLAGS.init_model_dir)
    elif FLAGS.export_type == MULTIPLE_CHOICE:
        version_dir = export_multiple_choice(FLAGS.export_path, FLAGS.init_model_dir)
    elif FLAGS.export_type == EMBEDDER:
        version_dir = export_embedder(FLAGS.export_path, FLAGS.init_model_dir,
                                      pooling=FLAGS.pooling, normalize=FLAGS.normalize,
                                      max_seq_length=FLAGS.max_seq_length)
    else:
        version_dir = export_encoder(FLAGS.export_path, FLAGS.init_model_dir,
                                     with_mlm=FLAGS.export_type == ENCODER_WITH_MLM)
    base = os.path.abspath(FLAGS.export_path)
    name = os.path.basename(base.rstrip(os.sep)) or "model"
    print(f"Wrote the {FLAGS.export_type} SavedModel, version "
          f"{os.path.basename(version_dir)}, to {version_dir}")
    print(f"Serve it: tensorflow_model_server --rest_api_port=8501 --model_name={name} "
          f"--model_base_path={base}")


if __name__ == "__main__":
    run(main)
