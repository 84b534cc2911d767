"""Pre-trained model directories: `bert_config.json`, `vocab.txt`, `text_config.json`,
`task_config.json` (the task and heads) and `model.weights.h5` (a `BertPretrainer`'s
weights), taken whole by every pipeline."""

import errno
import functools
import os
import shutil
import typing

import numpy as np

from keras_bert_app import names
from keras_bert_app.config import BertConfig
from keras_bert_app.files import model_dir_files, removed_on_failure
from keras_bert_app.layers.initializers import (load_error_reason, load_every_weight,
                                                 weights_set_after)
from keras_bert_app.models import (BertClassifier, BertEncoder, BertMultipleChoice,
                                   BertPretrainer, BertSpanLabeler, BertTokenClassifier)
from keras_bert_app.models.task import register_model_dir_loader
# TaskConfig was defined here first; `from keras_bert_app.model_dir import TaskConfig`
# keeps working.
from keras_bert_app.task_config import TaskConfig


def save_model_dir(output_dir, pretrainer, vocab_file, text_config):
    """Writes a pre-trained model directory; the task config says which heads
    `pretrainer` has."""
    if getattr(pretrainer, "optimizer", None) is not None or \
            pretrainer.dtype_policy.name != "float32":
        # A model directory holds float32 weights only, whatever the training run
        # used: a plain copy drops the optimizer state and the mixed-precision policy.
        with weights_set_after():
            copy = BertPretrainer(BertEncoder(pretrainer.encoder.config),
                                  next_sentence_prediction=pretrainer.next_sentence_prediction)
        copy.set_weights(pretrainer.get_weights())
        pretrainer = copy
    _write_model_dir(output_dir, pretrainer, vocab_file, text_config,
                     TaskConfig.for_pretrainer(pretrainer))


def save_classifier_dir(output_dir, classifier, vocab_file, text_config, task_config,
                        weights_file=None):
    """Writes a fine-tuned classifier directory: the pre-trained files plus the
    classifier's weights and its task (labels, problem type, texts, length).
    `weights_file`: a file `classifier.save_weights` wrote from the weights it holds
    now (a fine-tuning run's best), linked instead of written again."""
    if task_config.task != names.CLASSIFICATION_TASK or \
            task_config.num_outputs != classifier.num_classes or \
            task_config.problem_type != classifier.problem_type:
        raise ValueError(f"{task_config} does not describe this classifier "
                         f"({classifier.num_classes} outputs, {classifier.problem_type}).")
    # The weights alone: float32, without optimizer state or preprocessor (a copy
    # unless `classifier` is such a model already, as a fine-tuning run's final one).
    plain = _plain(classifier) and classifier.preprocessor is None
    if weights_file is not None and not plain:
        raise ValueError("weights_file is for a plain float32 classifier (no optimizer "
                         "state or preprocessor), as save_weights wrote it.")
    _write_model_dir(output_dir, classifier if plain else float32_classifier(classifier),
                     vocab_file, text_config, task_config, weights_file)


def _plain(model):
    """Whether `model` is what a model directory holds: float32, no optimizer."""
    return getattr(model, "optimizer", None) is None and \
        model.dtype_policy.name == "float32" and model.encoder.dtype_policy.name == "float32"


def float32_classifier(classifier):
    """A float32 `BertClassifier` with `classifier`'s weights and no optimizer
    state or preprocessor (what model directories and best checkpoints hold)."""
    with weights_set_after():  # every weight is set below
        copy = BertClassifier(BertEncoder(classifier.encoder.config),
                              num_classes=classifier.num_classes,
                              multi_label=classifier.multi_label, dropout=classifier.dropout)
    copy.set_weights([np.asarray(w) for w in classifier.get_weights()])
    return copy


def save_classifier(output_dir, classifier, label_names=None, pairs=False):
    """Writes a `BertClassifier` that carries its preprocessor (one from
    `BertClassifier.from_model_dir`, fine-tuned with `fit` in your own script) as a
    fine-tuned model directory: what `load_classifier`, `run_classifier --do_eval`
    and `export_savedmodel --export_type=classifier --init_model_dir` take.

    Args:
        output_dir: the directory to write.
        classifier: the classifier; its preprocessor gives vocabulary, casing and
            sequence length.
        label_names: the name of each class id (default "0", "1", …); None for
            regression.
        pairs: the classifier reads (text_a, text_b) pairs.
    """
    from keras_bert_app.text.text_config import TextConfig

    preprocessor = classifier.preprocessor
    if preprocessor is None or preprocessor.vocabulary is None:
        raise ValueError("save_classifier needs a classifier with its preprocessor "
                         "(BertClassifier.from_model_dir gives one).")
    if classifier.problem_type == names.REGRESSION:
        if label_names is not None:
            raise ValueError("A regression classifier has no label names.")
    elif label_names is None:
        label_names = [str(i) for i in range(classifier.num_classes)]
    elif len(label_names) != classifier.num_classes:
        raise ValueError(f"{len(label_names)} label names for {classifier.num_classes} "
                         "classes.")
    os.makedirs(output_dir, exist_ok=True)
    vocab_file = os.path.join(output_dir, names.VOCAB_FILE)
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(preprocessor.vocabulary) + "\n")
    text_config = TextConfig.for_vocab(vocab_file, preprocessor.do_lower_case,
                                       max_chars_per_word=preprocessor.max_chars_per_word)
    task = TaskConfig.for_classifier(
        classifier, label_names, preprocessor.sequence_length,
        names.TEXT_INPUTS if pairs else names.TEXT_INPUTS[:1])
    save_classifier_dir(output_dir, classifier, vocab_file, text_config, task)


def _write_model_dir(output_dir, model, vocab_file, text_config, task_config,
                     weights_file=None):
    """`weights_file`: the bytes `model.save_weights` would write (the caller's
    promise), hard-linked (else copied) rather than written again: ~0.3 s for MiniLM's
    91 MB. The best file is only ever replaced by a rename, never rewritten, so the
    link keeps these bytes."""
    os.makedirs(output_dir, exist_ok=True)
    model.encoder.config.to_json_file(os.path.join(output_dir, names.BERT_CONFIG_FILE))
    target_vocab = os.path.join(output_dir, names.VOCAB_FILE)
    if os.path.abspath(vocab_file) != os.path.abspath(target_vocab):
        shutil.copyfile(vocab_file, target_vocab)
    text_config.check_vocab(target_vocab)
    text_config.to_json_file(os.path.join(output_dir, names.TEXT_CONFIG_FILE))
    write_weights = model.save_weights if weights_file is None else \
        functools.partial(_link_or_copy, weights_file)
    for name, write in ((names.TASK_CONFIG_FILE, task_config.to_json_file),
                        (names.WEIGHTS_FILE, write_weights)):
        # Keras names weights files by their suffix: keep it on the partial file.
        partial = os.path.join(output_dir, ".partial." + name)
        with removed_on_failure(partial):
            write(partial)
        os.replace(partial, os.path.join(output_dir, name))


def _link_or_copy(source, target):
    """`target` as a hard link to `source`, else (another file system, one without
    hard links, a link limit) a copy. A `target` left by a killed run goes first: a
    copy must never write through a link to `source`."""
    if os.path.lexists(target):
        os.remove(target)
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                               errno.EOPNOTSUPP, errno.EACCES):
            raise
        shutil.copyfile(source, target)


def load_pretrainer(model_dir, dtype=None):
    """The `BertPretrainer` (encoder + MLM and, if trained with it, NSP/SOP head)
    saved in `model_dir`.

    The heads are the ones `task_config.json` records; the weights file is checked
    against them (Keras would silently drop a head the model lacks). A directory
    written before that file existed has its heads read from the weights file's
    content (see `_has_next_sentence_head`).
    """
    config, next_sentence, weights_file = pretrainer_layout(model_dir)
    with weights_set_after():  # every weight is in the file (Keras fails otherwise)
        pretrainer = BertPretrainer(BertEncoder(config, dtype=dtype),
                                    next_sentence_prediction=next_sentence)
    load_every_weight(pretrainer, weights_file)
    return pretrainer


def pretrainer_layout(model_dir):
    """`(BertConfig, has the NSP/SOP head, weights file)` of a pre-trained model
    directory, checked as `load_pretrainer` loads it (a fine-tuned directory, or a
    task config whose heads the weights contradict, is an error)."""
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
                             f"{names.PRETRAINING_TASK!r}); load_encoder reads both.")
        recorded = names.NEXT_SENTENCE_HEAD in task.heads
        if recorded != in_weights:
            raise ValueError(
                f"{task_file} lists the heads {list(task.heads)}, but {weights_file} "
                f"{'holds' if in_weights else 'has no'} {names.NEXT_SENTENCE_HEAD} head: "
                "the directory's files come from different models.")
        heads = recorded
    return config, heads, os.fspath(weights_file)


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


def read_task_config(model_dir):
    """The `TaskConfig` of `model_dir`, or None for a directory written before
    `task_config.json` existed (a pre-trained one)."""
    path = os.path.join(os.fspath(model_dir), names.TASK_CONFIG_FILE)
    return TaskConfig.from_json_file(path) if os.path.isfile(path) else None


def load_encoder(model_dir, dtype=None):
    """The `BertEncoder` of `model_dir`, pre-trained or fine-tuned."""
    task = read_task_config(model_dir)
    if task is not None and task.task == names.CLASSIFICATION_TASK:
        return load_classifier(model_dir, dtype=dtype, with_preprocessor=False).encoder
    if task is not None and task.task in _TASK_MODELS:
        return load_task_model(model_dir, task.task, dtype=dtype)[0].encoder
    return load_pretrainer(model_dir, dtype=dtype).encoder


def classifier_from_model_dir(cls, model_dir, num_classes=None, multi_label=False,
                              sequence_length=None, dropout=None, dtype=None,
                              dynamic_padding=True):
    """`BertClassifier.from_model_dir`: see there."""
    from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor

    task = read_task_config(model_dir)
    if task is not None and task.task == names.CLASSIFICATION_TASK:
        classifier = load_classifier(model_dir, dtype=dtype, sequence_length=sequence_length,
                                     dynamic_padding=dynamic_padding)
        if num_classes is not None and num_classes != classifier.num_classes:
            raise ValueError(f"{model_dir} holds a classifier with "
                             f"{classifier.num_classes} outputs, not num_classes="
                             f"{num_classes}.")
        return classifier
    if num_classes is None:
        raise ValueError(f"{model_dir} is a pre-trained model directory: give "
                         "num_classes for the new classification head.")
    preprocessor = BertTextPreprocessor.from_model_dir(
        model_dir, sequence_length=sequence_length or 128, dynamic_padding=dynamic_padding)
    return cls(load_encoder(model_dir, dtype=dtype), num_classes=num_classes,
               multi_label=multi_label, dropout=dropout, preprocessor=preprocessor)


register_model_dir_loader("BertClassifier", classifier_from_model_dir)


def load_classifier(model_dir, dtype=None, with_preprocessor=True, sequence_length=None,
                    dynamic_padding=True):
    """The fine-tuned `BertClassifier` of `model_dir` (`run_classifier`'s output),
    with its text preprocessor (at the trained sequence length by default).

    The head's shape comes from `task_config.json` and is checked against the weights
    file: a file from another classifier fails here, not with wrong outputs.
    """
    from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor

    config_file, weights_file, task_file = model_dir_files(
        model_dir, names.BERT_CONFIG_FILE, names.WEIGHTS_FILE, names.TASK_CONFIG_FILE)
    task = TaskConfig.from_json_file(task_file)
    if task.task != names.CLASSIFICATION_TASK:
        raise ValueError(f"{task_file}: task={task.task!r}; load_classifier reads "
                         f"fine-tuned classifier directories (task "
                         f"{names.CLASSIFICATION_TASK!r}).")
    preprocessor = None
    if with_preprocessor:
        preprocessor = BertTextPreprocessor.from_model_dir(
            model_dir, sequence_length=sequence_length or task.max_seq_length,
            dynamic_padding=dynamic_padding)
    with weights_set_after():  # every weight is in the file (Keras fails otherwise)
        classifier = BertClassifier(
            BertEncoder(BertConfig.from_json_file(config_file), dtype=dtype),
            num_classes=task.num_outputs,
            multi_label=task.problem_type == names.MULTI_LABEL, preprocessor=preprocessor)
    try:
        load_every_weight(classifier, weights_file)
    except ValueError as e:
        raise ValueError(f"{weights_file} does not hold the weights of the classifier "
                         f"{task_file} describes: {load_error_reason(e)}") from None
    return classifier


class _TaskModel(typing.NamedTuple):
    """How a fine-tuned task's head model is built from an encoder and the
    directory's task config: `cls(encoder, **head_args(task_config))`."""

    what: str  # the task, as messages name it
    cls: type
    head_args: typing.Callable = lambda task_config: {}

    def build(self, encoder, task_config):
        return self.cls(encoder, **self.head_args(task_config))

    def describes(self, task_config, model):
        """Whether `build` would make `model`'s class and head from `task_config`
        (checked without building one)."""
        return type(model) is self.cls and all(
            getattr(model, name) == value
            for name, value in self.head_args(task_config).items())


# Each fine-tuned task other than classification (classifiers carry a preprocessor
# and have their own functions above).
_TASK_MODELS = {
    names.SQUAD_TASK: _TaskModel("SQuAD", BertSpanLabeler),
    names.NER_TASK: _TaskModel("NER", BertTokenClassifier, lambda task_config: {
        "num_classes": len(task_config.label_names)}),
    names.MULTIPLE_CHOICE_TASK: _TaskModel("multiple-choice", BertMultipleChoice),
}


def save_task_dir(output_dir, model, vocab_file, text_config, task_config,
                  weights_file=None):
    """Writes a fine-tuned SQuAD, NER or multiple-choice directory: the pre-trained
    files plus the model's weights (float32, no optimizer state) and its task
    config (labels, sequence length, settings). `weights_file`: as
    `save_classifier_dir`'s."""
    if task_config.task not in _TASK_MODELS:
        raise ValueError(f"{task_config}: save_task_dir writes the tasks "
                         f"{sorted(_TASK_MODELS)}.")
    task_model = _TASK_MODELS[task_config.task]
    if _plain(model) and task_model.describes(task_config, model):
        # A run's final float32 copy already (~0.5 s of model building saved).
        _write_model_dir(output_dir, model, vocab_file, text_config, task_config,
                         weights_file)
        return
    if weights_file is not None:
        raise ValueError("weights_file is for a plain float32 model (no optimizer "
                         "state) of the task, as save_weights wrote it.")
    with weights_set_after():  # every weight is set below (or this fails)
        copy = task_model.build(BertEncoder(model.encoder.config), task_config)
    weights = model.get_weights()
    if type(copy) is not type(model) or \
            [tuple(w.shape) for w in copy.get_weights()] != [tuple(w.shape) for w in weights]:
        raise ValueError(f"{task_config} does not describe this {type(model).__name__}.")
    copy.set_weights([np.asarray(w) for w in weights])
    _write_model_dir(output_dir, copy, vocab_file, text_config, task_config)


def load_task_model(model_dir, task, dtype=None):
    """`(model, TaskConfig)` of a fine-tuned `task` directory (`names.SQUAD_TASK`,
    `NER_TASK` or `MULTIPLE_CHOICE_TASK`: `run_squad`'s, `run_ner`'s,
    `run_multiple_choice`'s output); the weights file is checked against the model
    its task config describes."""
    config_file, weights_file, task_file = model_dir_files(
        model_dir, names.BERT_CONFIG_FILE, names.WEIGHTS_FILE, names.TASK_CONFIG_FILE)
    recorded = TaskConfig.from_json_file(task_file)
    what = _TASK_MODELS[task].what
    if recorded.task != task:
        raise ValueError(f"{task_file}: task={recorded.task!r}; a {what} model directory "
                         f"has task {task!r}.")
    with weights_set_after():  # every weight is in the file (Keras fails otherwise)
        model = _TASK_MODELS[task].build(
            BertEncoder(BertConfig.from_json_file(config_file), dtype=dtype), recorded)
    try:
        load_every_weight(model, weights_file)
    except ValueError as e:
        raise ValueError(f"{weights_file} does not hold the weights of the {what} model "
                         f"{task_file} describes: {load_error_reason(e)}") from None
    return model, recorded


def save_span_labeler_dir(output_dir, span_labeler, vocab_file, text_config, task_config):
    """Writes a fine-tuned SQuAD directory (`save_task_dir` for SQuAD)."""
    if task_config.task != names.SQUAD_TASK:
        raise ValueError(f"{task_config} is not a SQuAD task.")
    save_task_dir(output_dir, span_labeler, vocab_file, text_config, task_config)


def load_span_labeler(model_dir, dtype=None):
    """`(BertSpanLabeler, TaskConfig)` of a fine-tuned SQuAD directory
    (`run_squad`'s output)."""
    return load_task_model(model_dir, names.SQUAD_TASK, dtype=dtype)
