"""Pre-trained model directories: `bert_config.json`, `vocab.txt`, `text_config.json`,
`task_config.json` (the task and heads) and `model.weights.h5` (a `BertPretrainer`'s
weights), taken whole by every pipeline."""

import dataclasses
import json
import os
import shutil

from keras_bert_app import names
from keras_bert_app.config import BertConfig
from keras_bert_app.files import model_dir_files, read_json_file
from keras_bert_app.models import BertEncoder, BertPretrainer

PRETRAINING_HEADS = (names.MASKED_LM_HEAD, names.NEXT_SENTENCE_HEAD)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """What the weights of a model directory are for: `task_config.json`.

    Pre-training writes `{"task": "pretraining", "heads": ["masked_lm",
    "next_sentence"]}` (no `next_sentence` for masked-LM-only runs). A fine-tuned
    directory records its own task and heads, and the fields a reader needs besides.

    Args:
        task: `"pretraining"`, or the fine-tuning task's name.
        heads: names of the heads whose weights the directory holds, in order.
        label_names: the name of each label id (classifiers, taggers), or None.
        max_seq_length: the sequence length the task was trained with, or None.
    """

    task: str
    heads: tuple
    label_names: tuple = None
    max_seq_length: int = None

    def __post_init__(self):
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task={self.task!r} must be a non-empty string.")
        for field in ("heads", "label_names"):
            value = getattr(self, field)
            if value is None and field == "label_names":
                continue
            if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
                    not all(isinstance(v, str) and v for v in value) or \
                    len(set(value)) != len(value):
                raise ValueError(f"{field}={value!r} must be a list of distinct names.")
            object.__setattr__(self, field, tuple(value))
        if self.max_seq_length is not None and (
                isinstance(self.max_seq_length, bool) or
                not isinstance(self.max_seq_length, int) or self.max_seq_length < 1):
            raise ValueError(f"max_seq_length={self.max_seq_length!r} must be a "
                             "positive integer.")
        if self.task == names.PRETRAINING_TASK:
            if names.MASKED_LM_HEAD not in self.heads or \
                    not set(self.heads) <= set(PRETRAINING_HEADS):
                raise ValueError(f"heads={list(self.heads)}: pre-training has "
                                 f"{names.MASKED_LM_HEAD!r} and optionally "
                                 f"{names.NEXT_SENTENCE_HEAD!r}.")

    @classmethod
    def for_pretrainer(cls, pretrainer):
        heads = [names.MASKED_LM_HEAD]
        if pretrainer.next_sentence_prediction:
            heads.append(names.NEXT_SENTENCE_HEAD)
        return cls(task=names.PRETRAINING_TASK, heads=heads)

    def to_json_file(self, path):
        values = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(self).items() if v is not None}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(values, f, indent=2)
            f.write("\n")

    @classmethod
    def from_json_file(cls, path):
        path = os.fspath(path)
        values = read_json_file(path)
        known = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(values, dict) or set(values) - set(known) or \
                not {"task", "heads"} <= set(values):
            raise ValueError(f"{path}: expected a JSON object with the fields {known} "
                             f"(task and heads required), got {values!r}.")
        try:
            return cls(**values)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def save_model_dir(output_dir, pretrainer, vocab_file, text_config):
    """Writes a pre-trained model directory; the task config says which heads
    `pretrainer` has."""
    os.makedirs(output_dir, exist_ok=True)
    pretrainer.encoder.config.to_json_file(os.path.join(output_dir, names.BERT_CONFIG_FILE))
    target_vocab = os.path.join(output_dir, names.VOCAB_FILE)
    if os.path.abspath(vocab_file) != os.path.abspath(target_vocab):
        shutil.copyfile(vocab_file, target_vocab)
    text_config.check_vocab(target_vocab)
    text_config.to_json_file(os.path.join(output_dir, names.TEXT_CONFIG_FILE))
    if getattr(pretrainer, "optimizer", None) is not None or \
            pretrainer.dtype_policy.name != "float32":
        # A model directory holds float32 weights only, whatever the training run
        # used: a plain copy drops the optimizer state and the mixed-precision policy.
        copy = BertPretrainer(BertEncoder(pretrainer.encoder.config),
                              next_sentence_prediction=pretrainer.next_sentence_prediction)
        copy.set_weights(pretrainer.get_weights())
        pretrainer = copy
    for name, write in ((names.TASK_CONFIG_FILE,
                         TaskConfig.for_pretrainer(pretrainer).to_json_file),
                        (names.WEIGHTS_FILE, pretrainer.save_weights)):
        # Keras names weights files by their suffix: keep it on the partial file.
        partial = os.path.join(output_dir, ".partial." + name)
        write(partial)
        os.replace(partial, os.path.join(output_dir, name))


def load_pretrainer(model_dir, dtype=None):
    """The `BertPretrainer` (encoder + MLM and, if trained with it, NSP/SOP head)
    saved in `model_dir`.

    The heads are the ones `task_config.json` records; the weights file is checked
    against them (Keras would silently drop a head the model lacks). A directory
    written before that file existed has its heads read from the weights file's
    content (see `_has_next_sentence_head`).
    """
    config_file, weights_file = model_dir_files(model_dir, names.BERT_CONFIG_FILE,
                                                names.WEIGHTS_FILE)
    config = BertConfig.from_json_file(config_file)
    in_weights = _has_next_sentence_head(weights_file, config.hidden_size)
    heads = in_weights
    task_file = os.path.join(os.fspath(model_dir), names.TASK_CONFIG_FILE)
    if os.path.isfile(task_file):
        task = TaskConfig.from_json_file(task_file)
        if task.task != names.PRETRAINING_TASK:
            raise ValueError(f"{task_file}: task={task.task!r}; load_pretrainer reads "
                             f"pre-trained model directories (task "
                             f"{names.PRETRAINING_TASK!r}).")
        recorded = names.NEXT_SENTENCE_HEAD in task.heads
        if recorded != in_weights:
            raise ValueError(
                f"{task_file} lists the heads {list(task.heads)}, but {weights_file} "
                f"{'holds' if in_weights else 'has no'} {names.NEXT_SENTENCE_HEAD} head: "
                "the directory's files come from different models.")
        heads = recorded
    pretrainer = BertPretrainer(BertEncoder(config, dtype=dtype),
                                next_sentence_prediction=heads)
    pretrainer.load_weights(weights_file)
    return pretrainer


def _has_next_sentence_head(weights_file, hidden_size):
    """Whether a BertPretrainer weights file holds the NSP/SOP head, from its
    variables: the head is the only layer directly inside the pretrainer whose own
    variables are a `[hidden_size, 2]` kernel and a `[2]` bias (Keras' `.weights.h5`
    layout: `layers/<layer>/vars/<index>`)."""
    import h5py

    try:
        with h5py.File(weights_file, "r") as f:
            layers = f.get("layers")
            if not isinstance(layers, h5py.Group):
                raise ValueError(f"{weights_file} is not a Keras model's weights file "
                                 "(it has no 'layers' group).")
            heads = [name for name, layer in layers.items()
                     if _variable_shapes(layer) == sorted([(hidden_size, 2), (2,)])]
    except OSError as e:
        raise ValueError(f"{weights_file} is not a Keras weights file: {e}") from None
    if len(heads) > 1:
        raise ValueError(f"{weights_file} has {len(heads)} layers shaped like the "
                         f"{names.NEXT_SENTENCE_HEAD} head ({heads}): not the weights of "
                         "one BertPretrainer.")
    return bool(heads)


def _variable_shapes(layer):
    """Sorted shapes of the variables a layer group holds itself (not its sublayers),
    or None if it holds sublayers or no variables."""
    import h5py

    if not isinstance(layer, h5py.Group) or set(layer) != {"vars"}:
        return None
    variables = layer["vars"]
    if not variables or not all(isinstance(v, h5py.Dataset) for v in variables.values()):
        return None
    return sorted(tuple(v.shape) for v in variables.values())


def load_encoder(model_dir, dtype=None):
    """The pre-trained `BertEncoder` of `model_dir`."""
    return load_pretrainer(model_dir, dtype=dtype).encoder
