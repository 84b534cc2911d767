"""Flags every training binary shares (model source, distribution, precision,
checkpoints), defined once and turned into run-config fields once."""

from absl import app, flags

FLAGS = flags.FLAGS


def define_model_flags():
    flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, final model.")
    flags.DEFINE_string("bert_config_file", None, "Google or Hugging Face BERT config JSON.")
    flags.DEFINE_string("preset", None, "A BertConfig preset (bert_tiny … bert_large); its "
                        "vocab_size becomes the size of --vocab_file.")
    flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary (not with init_model_dir).")
    flags.DEFINE_bool("do_lower_case", None, "Casing of the vocabulary.")
    flags.DEFINE_string("init_checkpoint", None, "Google TF1 checkpoint prefix or Hugging "
                        "Face directory to start from.")
    flags.DEFINE_string("init_model_dir", None, "Pre-trained model directory to start "
                        "from (config, vocab, casing, weights).")


def define_execution_flags():
    flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Optimizer.")
    flags.DEFINE_float("weight_decay", 0.01, "Decoupled weight decay (not LayerNorm/bias).")
    flags.DEFINE_enum("distribution_strategy", "default",
                      ["default", "one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                      "tf.distribute strategy (TF_CONFIG for multi-worker).")
    flags.DEFINE_string("tpu", None, "TPU name or address for --distribution_strategy=tpu.")
    flags.DEFINE_enum("mixed_precision", "float32",
                      ["float32", "mixed_bfloat16", "mixed_float16"], "Dtype policy.")
    flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA. Default "
                      "'auto': on for JAX and on GPUs/TPUs (also under tf.distribute, "
                      "where Keras would switch it off), off on CPU-only machines; the "
                      "run's log says which and why.")
    flags.DEFINE_bool("graph_optimization", None, "Let TensorFlow's Grappler optimise "
                      "the step graphs without XLA. Default 'auto': off for a short "
                      "CPU-only run (its ~1 s rewrite would not pay back), else on; the "
                      "run's log says which and why.")
    flags.DEFINE_integer("steps_per_execution", 1, "Steps per compiled call.")
    flags.DEFINE_bool("compilation_cache", True, "Keep compiled XLA (and JAX) programs "
                      "across runs: a later run with the same shapes, in any model_dir, "
                      "loads them instead of compiling.")
    flags.DEFINE_string("compilation_cache_dir", None, "Folder of the compilation "
                        "cache; default $XDG_CACHE_HOME/keras_bert_app/xla (else "
                        "~/.cache/keras_bert_app/xla), shared by every run.")
    flags.DEFINE_bool("remat", False, "Recompute each transformer block in the backward "
                      "pass instead of keeping its activations: much less memory "
                      "(e.g. bert_large at sequence 512) for one more forward pass; "
                      "same gradients, dropout included.")
    flags.DEFINE_integer("log_steps", None, "TensorBoard interval (divides the checkpoint "
                         "interval); default gcd(save_checkpoints_steps, 100).")
    flags.DEFINE_integer("keep_checkpoint_max", 3, "Checkpoints kept.")
    flags.DEFINE_integer("seed", 12345, "Seed of the initial weights and the input "
                         "stream, shared by all workers and by a resumed run.")
    flags.DEFINE_integer("cpu_devices", 1, "Split the host CPU into this many logical "
                         "devices (to run mirrored/data-parallel without accelerators).")


def define_finetuning_flags(max_seq_length=128, save_checkpoints_steps=1000,
                            length_help="Longest input, special tokens included.",
                            example="example", checkpoint_help="Checkpoint interval."):
    """The model source, execution and schedule flags of every fine-tuning binary
    (`FineTuningSettings`), with the task's defaults."""
    define_model_flags()
    define_execution_flags()
    flags.DEFINE_bool("do_train", False, "Fine-tune on the training data.")
    flags.DEFINE_integer("max_seq_length", max_seq_length, length_help)
    flags.DEFINE_integer("train_batch_size", 32, f"Global training batch size ({example}s).")
    flags.DEFINE_integer("predict_batch_size", 8, "Prediction batch size.")
    flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
    flags.DEFINE_float("num_train_epochs", 3.0, f"Epochs over the training {example}s.")
    flags.DEFINE_integer("num_train_steps", None, "Training steps (overrides the epochs).")
    flags.DEFINE_float("warmup_proportion", 0.1, "Share of steps with linear warm-up.")
    flags.DEFINE_integer("save_checkpoints_steps", save_checkpoints_steps, checkpoint_help)
    flags.DEFINE_bool("skip_bad_records", False, "Drop the training file's bad "
                      f"{example}s (a wrong field count, text that is not UTF-8, a "
                      "label outside the label set …) instead of stopping; the count "
                      "is logged and recorded in the run file. A file whose every "
                      f"{example} is bad is still an error. Never applied to the eval "
                      "or predict files: their rows must line up with the results.")


def finetuning_fields():
    """`FineTuningSettings`' fields from the flags `define_finetuning_flags` defined."""
    return dict(
        **model_fields(), **execution_fields(), do_train=FLAGS.do_train,
        max_seq_length=FLAGS.max_seq_length, train_batch_size=FLAGS.train_batch_size,
        predict_batch_size=FLAGS.predict_batch_size, learning_rate=FLAGS.learning_rate,
        num_train_epochs=FLAGS.num_train_epochs, num_train_steps=FLAGS.num_train_steps,
        warmup_proportion=FLAGS.warmup_proportion,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        skip_bad_records=FLAGS.skip_bad_records)


def parse_flags(argv):
    """absl's flag parsing (`--help` exits here, before any heavy import), then the
    compilation cache: TensorFlow reads its folder from `TF_XLA_FLAGS` once, and
    under `absl.app` that happens between flag parsing and `main` (measured with
    TensorFlow 2.21: a folder named in `main` is ignored)."""
    rest = app.parse_flags_with_usage(argv)
    from pipelines.frameworks import import_frameworks

    import_frameworks()
    if FLAGS.compilation_cache:
        from keras_bert_app.training.compilation import enable_compilation_cache

        enable_compilation_cache(FLAGS.compilation_cache_dir)
    return rest


def split_cpu():
    """Before anything touches a device."""
    from keras_bert_app.training.distribution import split_host_cpu

    split_host_cpu(FLAGS.cpu_devices)


def bert_config_from_flags():
    """`--bert_config_file` or `--preset` (sized to `--vocab_file`), or None."""
    from keras_bert_app.config import BertConfig

    if FLAGS.bert_config_file and FLAGS.preset:
        raise app.UsageError("Give --bert_config_file or --preset, not both.")
    if FLAGS.bert_config_file:
        return BertConfig.from_json_file(FLAGS.bert_config_file)
    if FLAGS.preset:
        # A preset fixes the architecture; its vocabulary size follows --vocab_file.
        overrides = {}
        if FLAGS.vocab_file:
            from keras_bert_app.text.vocab import load_vocab

            overrides["vocab_size"] = len(load_vocab(FLAGS.vocab_file))
        return BertConfig.from_preset(FLAGS.preset, **overrides)
    return None


def model_fields():
    return dict(model_dir=FLAGS.model_dir, bert_config=bert_config_from_flags(),
                vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
                init_checkpoint=FLAGS.init_checkpoint, init_model_dir=FLAGS.init_model_dir)


def execution_fields():
    return dict(
        optimizer=FLAGS.optimizer, weight_decay=FLAGS.weight_decay,
        distribution_strategy=FLAGS.distribution_strategy, tpu=FLAGS.tpu,
        mixed_precision=FLAGS.mixed_precision,
        jit_compile="auto" if FLAGS.jit_compile is None else FLAGS.jit_compile,
        graph_optimization="auto" if FLAGS.graph_optimization is None
        else FLAGS.graph_optimization,
        steps_per_execution=FLAGS.steps_per_execution, remat=FLAGS.remat,
        compilation_cache=FLAGS.compilation_cache,
        compilation_cache_dir=FLAGS.compilation_cache_dir,
        log_steps=FLAGS.log_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max, seed=FLAGS.seed)
