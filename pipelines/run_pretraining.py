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

from absl import app, flags

from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_string("input_file", None, "TFRecord glob, or raw text file glob.")
flags.DEFINE_enum("input_format", "auto", ["auto", "tfrecord", "text"],
                  "auto: decided from the files' content (TFRecord framing and "
                  "pre-training tf.train.Examples, or UTF-8 text); a value that "
                  "contradicts the content is an error.")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, final model.")
flags.DEFINE_string("bert_config_file", None, "Google or Hugging Face BERT config JSON.")
flags.DEFINE_string("preset", None, "A BertConfig preset (bert_tiny … bert_large); its "
                    "vocab_size becomes the size of --vocab_file.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary (not with init_model_dir).")
flags.DEFINE_bool("do_lower_case", None, "Casing of the vocabulary.")
flags.DEFINE_string("init_checkpoint", None,
                    "Google TF1 checkpoint prefix or Hugging Face directory to start from.")
flags.DEFINE_string("init_model_dir", None,
                    "Pre-trained model directory to continue (config, vocab, weights).")
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
flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Optimizer.")
flags.DEFINE_float("weight_decay", 0.01, "Decoupled weight decay (not LayerNorm/bias).")
flags.DEFINE_integer("gradient_accumulation_steps", 1, "Batches per optimizer update.")
flags.DEFINE_enum("distribution_strategy", "default",
                  ["default", "one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                  "tf.distribute strategy (TF_CONFIG for multi-worker).")
flags.DEFINE_string("tpu", None, "TPU name or address for --distribution_strategy=tpu.")
flags.DEFINE_enum("mixed_precision", "float32",
                  ["float32", "mixed_bfloat16", "mixed_float16"], "Dtype policy.")
flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA. Default: "
                  "Keras' 'auto' (jax.jit on JAX; TensorFlow decides on its own).")
flags.DEFINE_integer("steps_per_execution", 1, "Steps per compiled call.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint interval.")
flags.DEFINE_integer("log_steps", None, "TensorBoard interval (divides the checkpoint "
                     "interval); default gcd(save_checkpoints_steps, 100).")
flags.DEFINE_integer("keep_checkpoint_max", 3, "Checkpoints kept.")
flags.DEFINE_integer("seed", 12345, "Seed of the initial weights and the input stream, "
                     "shared by all workers and by a resumed run.")
flags.DEFINE_bool("skip_corrupt_records", False, "Skip the rest of a TFRecord file from "
                  "its first corrupt record on (logged with file and offset) instead "
                  "of stopping with an error.")
flags.DEFINE_bool("do_train", True, "Train.")
flags.DEFINE_bool("do_eval", False, "Evaluate masked-LM and NSP accuracy/loss on "
                  "--eval_input_file (default --input_file) after training.")
flags.DEFINE_string("eval_input_file", None, "Held-out TFRecords or text to evaluate on.")
flags.DEFINE_integer("eval_batch_size", 8, "Evaluation batch size.")
flags.DEFINE_integer("max_eval_steps", 100, "Most evaluation batches.")
flags.DEFINE_integer("cpu_devices", 1, "Split the host CPU into this many logical "
                     "devices (to run mirrored/data-parallel without accelerators).")
flags.mark_flags_as_required(["input_file", "model_dir"])


def main(argv):
    del argv
    from keras_bert_app.training.distribution import split_host_cpu

    split_host_cpu(FLAGS.cpu_devices)  # before anything touches a device

    from keras_bert_app.config import BertConfig
    from keras_bert_app.training.pretraining import PretrainingRunConfig, run_pretraining

    if FLAGS.bert_config_file and FLAGS.preset:
        raise app.UsageError("Give --bert_config_file or --preset, not both.")
    bert_config = None
    if FLAGS.bert_config_file:
        bert_config = BertConfig.from_json_file(FLAGS.bert_config_file)
    elif FLAGS.preset:
        # A preset fixes the architecture; its vocabulary size follows --vocab_file.
        overrides = {}
        if FLAGS.vocab_file:
            from keras_bert_app.text.vocab import load_vocab

            overrides["vocab_size"] = len(load_vocab(FLAGS.vocab_file))
        bert_config = BertConfig.from_preset(FLAGS.preset, **overrides)
    config = PretrainingRunConfig(
        input_file=FLAGS.input_file, model_dir=FLAGS.model_dir, bert_config=bert_config,
        vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
        init_checkpoint=FLAGS.init_checkpoint, init_model_dir=FLAGS.init_model_dir,
        input_format=FLAGS.input_format, max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob,
        sentence_prediction=FLAGS.sentence_prediction,
        do_whole_word_mask=FLAGS.do_whole_word_mask,
        train_batch_size=FLAGS.train_batch_size, num_train_steps=FLAGS.num_train_steps,
        num_warmup_steps=FLAGS.num_warmup_steps, learning_rate=FLAGS.learning_rate,
        optimizer=FLAGS.optimizer, weight_decay=FLAGS.weight_decay,
        gradient_accumulation_steps=FLAGS.gradient_accumulation_steps,
        distribution_strategy=FLAGS.distribution_strategy, tpu=FLAGS.tpu,
        mixed_precision=FLAGS.mixed_precision,
        jit_compile="auto" if FLAGS.jit_compile is None else FLAGS.jit_compile,
        steps_per_execution=FLAGS.steps_per_execution,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps, log_steps=FLAGS.log_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max, seed=FLAGS.seed,
        skip_corrupt_records=FLAGS.skip_corrupt_records, do_train=FLAGS.do_train,
        do_eval=FLAGS.do_eval, eval_input_file=FLAGS.eval_input_file,
        eval_batch_size=FLAGS.eval_batch_size, max_eval_steps=FLAGS.max_eval_steps)
    run_pretraining(config)
    if FLAGS.do_train:
        print(f"Wrote the pre-trained model directory {FLAGS.model_dir}")


if __name__ == "__main__":
    run(main)
