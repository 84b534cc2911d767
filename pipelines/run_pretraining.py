"""Pre-trains BERT (masked LM + NSP/SOP) with `model.fit` under a distribution.

    python -m pipelines.run_pretraining --input_file='data/*.tfrecord' \
        --preset=bert_small --vocab_file=vocab.txt --do_lower_case=true \
        --model_dir=runs/small --train_batch_size=32 --num_train_steps=100000 \
        --num_warmup_steps=10000 --learning_rate=1e-4 --save_checkpoints_steps=1000

`--input_file` is TFRecords — `create_pretraining_data`'s (with their metadata), or
Google's / Model Garden's (no metadata: give --max_seq_length and
--max_predictions_per_seq) — or raw text (one sentence per line, blank lines between
documents), masked dynamically; which one is decided from the files' content.
Under `--model_dir`: checkpoints/, logs/train (TensorBoard) and, at the end, a
pre-trained model directory. The same command after a crash or kill resumes from the
newest checkpoint. With KERAS_BACKEND=jax the mirrored/tpu/multi-worker strategies
become `keras.distribution.DataParallel`.
"""

from absl import flags

from pipelines import training_flags
from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_string("input_file", None, "TFRecord glob, or raw text file glob.")
flags.DEFINE_enum("input_format", "auto", ["auto", "tfrecord", "text"],
                  "auto: decided from the files' content (TFRecord framing and "
                  "pre-training tf.train.Examples, or UTF-8 text); a value that "
                  "contradicts the content is an error.")
training_flags.define_model_flags()
training_flags.define_execution_flags()
flags.DEFINE_integer("max_seq_length", None, "Sequence length: raw text (default 128) "
                     "and records without metadata (required); records with metadata "
                     "carry it (a given value must agree).")
flags.DEFINE_integer("max_predictions_per_seq", None, "Masked positions per sequence: "
                     "raw text (default 20) and records without metadata (required).")
flags.DEFINE_float("masked_lm_prob", 0.15, "Raw text: share of tokens masked.")
flags.DEFINE_float("short_seq_prob", 0.1, "Raw text: probability of a shorter target.")
flags.DEFINE_enum("sentence_prediction", "nsp", ["nsp", "sop", "none"],
                  "Raw text: next-sentence, sentence-order, or masked LM only.")
flags.DEFINE_bool("do_whole_word_mask", False, "Raw text: mask whole words.")
flags.DEFINE_integer("train_batch_size", 32, "Global batch size.")
flags.DEFINE_integer("num_train_steps", 100000, "Training steps (batches).")
flags.DEFINE_integer("num_warmup_steps", 10000, "Linear warmup steps.")
flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate.")
flags.DEFINE_integer("gradient_accumulation_steps", 1, "Batches per optimizer update.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint interval.")
flags.DEFINE_bool("skip_corrupt_records", False, "Skip the rest of a TFRecord file from "
                  "its first corrupt record on (logged with file and offset) instead "
                  "of stopping with an error.")
flags.DEFINE_bool("do_train", True, "Train.")
flags.DEFINE_bool("do_eval", False, "Evaluate masked-LM and NSP accuracy/loss on "
                  "--eval_input_file (default --input_file) after training.")
flags.DEFINE_string("eval_input_file", None, "Held-out TFRecords or text to evaluate on.")
flags.DEFINE_integer("eval_batch_size", 8, "Evaluation batch size.")
flags.DEFINE_integer("max_eval_steps", 100, "Most evaluation batches.")
flags.mark_flags_as_required(["input_file", "model_dir"])


def main(argv):
    del argv
    training_flags.split_cpu()
    from keras_bert_app.training.pretraining import PretrainingRunConfig, run_pretraining

    config = PretrainingRunConfig(
        input_file=FLAGS.input_file, **training_flags.model_fields(),
        **training_flags.execution_fields(),
        input_format=FLAGS.input_format, max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob,
        sentence_prediction=FLAGS.sentence_prediction,
        do_whole_word_mask=FLAGS.do_whole_word_mask,
        train_batch_size=FLAGS.train_batch_size, num_train_steps=FLAGS.num_train_steps,
        num_warmup_steps=FLAGS.num_warmup_steps, learning_rate=FLAGS.learning_rate,
        gradient_accumulation_steps=FLAGS.gradient_accumulation_steps,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        skip_corrupt_records=FLAGS.skip_corrupt_records, do_train=FLAGS.do_train,
        do_eval=FLAGS.do_eval, eval_input_file=FLAGS.eval_input_file,
        eval_batch_size=FLAGS.eval_batch_size, max_eval_steps=FLAGS.max_eval_steps)
    run_pretraining(config)  # the chief prints where it wrote the model directory


if __name__ == "__main__":
    run(main, flags_parser=training_flags.parse_flags)
