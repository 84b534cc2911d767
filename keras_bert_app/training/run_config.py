"""The settings every training run shares, written once: where the model starts, how
the run executes, and (for fine-tuning) the optimisation schedule.

Each run config (`PretrainingRunConfig`, `ClassifierRunConfig`, `SquadRunConfig`,
the NER and multiple-choice configs) is a frozen, keyword-only dataclass built on
these, adding its data and task fields; `pipelines/training_flags.py` defines the
matching flags once.
"""

import dataclasses

from keras_bert_app.config import BertConfig
from keras_bert_app.training.runner import DEFAULT_SEED, check_execution


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Model source and execution settings of every training run.

    The model starts from `init_model_dir` (a model directory: config, vocabulary,
    casing, weights), or from `bert_config` + `vocab_file` + `do_lower_case`,
    optionally with the Google TF1 checkpoint or Hugging Face directory
    `init_checkpoint` (`runner.model_sources`).
    """

    init_model_dir: str = None
    init_checkpoint: str = None
    bert_config: BertConfig = None
    vocab_file: str = None
    do_lower_case: bool = None
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    distribution_strategy: str = "default"
    tpu: str = None
    mixed_precision: str = "float32"
    jit_compile: object = "auto"  # "auto" (see training.compilation), True or False
    # Grappler's rewrite of the step graphs: "auto" (off for a short CPU run without
    # XLA, `compilation.grappler_pays`), True or False.
    graph_optimization: object = "auto"
    # Compiled programs (XLA on TensorFlow, JAX) kept across runs: a run with the
    # same shapes loads them instead of compiling (`compilation.enable_compilation_cache`;
    # None: `$XDG_CACHE_HOME` or `~/.cache` /keras_bert_app/xla).
    compilation_cache: bool = True
    compilation_cache_dir: str = None
    steps_per_execution: int = 1
    # Rematerialise the transformer blocks (`BertEncoder(remat=True)`): less memory
    # for one more forward pass; the gradients and the saved model are the same.
    remat: bool = False
    log_steps: int = None
    keep_checkpoint_max: int = 3
    # Initial weights and the input stream: fixed by default, so that every worker of
    # a multi-worker run (and a resumed run) starts from the same weights and stream.
    seed: int = DEFAULT_SEED
    verbose: object = "auto"

    def __post_init__(self):
        check_execution(self)
        positive(self, "steps_per_execution", "keep_checkpoint_max")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FineTuningSettings(RunSettings):
    """What every fine-tuning run adds: the sequence length and the schedule.

    Steps count batches of `train_batch_size` examples: `num_train_steps`, or by
    default `num_train_epochs` over the training examples (each task says what an
    example is), with linear warm-up over `warmup_proportion` of them.
    `skip_bad_records` drops the training file's bad records instead of stopping.
    """

    model_dir: str
    do_train: bool = False
    max_seq_length: int = 128
    train_batch_size: int = 32
    predict_batch_size: int = 8
    learning_rate: float = 5e-5
    num_train_epochs: float = 3.0
    num_train_steps: int = None
    warmup_proportion: float = 0.1
    save_checkpoints_steps: int = 1000
    # Training data only: a record that is wrong in itself (a bad row, line,
    # sentence or question) is dropped, counted and logged instead of stopping the
    # run; evaluation and prediction files never skip (their rows must line up with
    # the results). The count is recorded in the run file.
    skip_bad_records: bool = False

    def __post_init__(self):
        super().__post_init__()
        positive(self, "max_seq_length", "train_batch_size", "predict_batch_size")
        if self.save_checkpoints_steps is not None:
            positive(self, "save_checkpoints_steps")
        if self.num_train_steps is not None:
            positive(self, "num_train_steps")
        elif not self.num_train_epochs > 0:
            raise ValueError(f"num_train_epochs={self.num_train_epochs} must be positive.")
        if not 0 <= self.warmup_proportion <= 1:
            raise ValueError(f"warmup_proportion={self.warmup_proportion} must be in [0, 1].")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be positive.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FileTaskSettings(FineTuningSettings):
    """A fine-tuning run on data files (`run_ner`, `run_multiple_choice`): each of
    `do_train`, `do_eval` and `do_predict` reads its own file; with `do_eval` the
    model is evaluated at every checkpoint (every `save_checkpoints_steps`, by
    default once an epoch) and the best is what the model directory ends with."""

    train_file: str = None
    eval_file: str = None
    predict_file: str = None
    do_eval: bool = False
    do_predict: bool = False
    eval_batch_size: int = 8
    save_checkpoints_steps: int = None  # default: one epoch

    def __post_init__(self):
        super().__post_init__()
        if not (self.do_train or self.do_eval or self.do_predict):
            raise ValueError("Nothing to do: set do_train, do_eval and/or do_predict.")
        for flag, file in (("do_train", self.train_file), ("do_eval", self.eval_file),
                           ("do_predict", self.predict_file)):
            if getattr(self, flag) and file is None:
                raise ValueError(f"{flag} needs {flag.replace('do_', '')}_file.")
        positive(self, "eval_batch_size")


def positive(config, *fields):
    """Refuses a field that is not a positive integer, naming it."""
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{field}={value!r} must be a positive integer.")
