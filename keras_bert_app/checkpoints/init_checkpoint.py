"""Starting a model from an existing checkpoint (`--init_checkpoint`,
`--init_model_dir`) with the same guarantees as `convert_checkpoint`: the vocabulary
and casing are the checkpoint's own, and every encoder weight is loaded."""

import os
from collections import Counter

from keras import ops

from keras_bert_app.checkpoints import importer, source as sources
from keras_bert_app.checkpoints.weight_names import model_variables, to_google_layout
from keras_bert_app.config import BertConfig
from keras_bert_app.layers.initializers import load_every_weight
from keras_bert_app.model_dir import load_pretrainer, pretrainer_layout

# Config fields that change the computation without changing a weight's shape (the
# shapes are checked weight by weight when loading).
_SHAPELESS_FIELDS = ("num_attention_heads", "hidden_act", "layer_norm_eps")


def check_init_checkpoint(path, vocab_file=None, do_lower_case=None, bert_config=None):
    """The checks of `load_init_checkpoint` that need no model and no weights.

    Cheap enough to run before a training run builds anything, so a wrong flag stops
    it at once. Returns the notes on what could not be checked (no `vocab.txt` beside
    the checkpoint, casing not recorded).

    Raises:
        FileNotFoundError: `path` holds no checkpoint.
        ValueError: `vocab_file` differs in content from the checkpoint's
            `vocab.txt`, `do_lower_case` from its `tokenizer_config.json`, or
            `bert_config` from its config in a field the weight shapes do not show
            (the message names both files).
    """
    return _checked_source(path, vocab_file, do_lower_case, bert_config)[1]


def _checked_source(path, vocab_file, do_lower_case, bert_config):
    source = sources.locate(path)
    _check_weights_exist(source)
    notes = sources.check_text(source, vocab_file, do_lower_case)
    if bert_config is not None and source.config_file is not None:
        theirs = BertConfig.from_json_file(source.config_file)
        for field in _SHAPELESS_FIELDS:
            if getattr(bert_config, field) != getattr(theirs, field):
                raise ValueError(f"The model's {field}={getattr(bert_config, field)} "
                                 f"contradicts {source.config_file} ({field}="
                                 f"{getattr(theirs, field)}).")
    return source, notes


def load_init_checkpoint(pretrainer, path, vocab_file=None, do_lower_case=None):
    """Loads a Hugging Face directory or Google TF1 checkpoint into `pretrainer`.

    Args:
        pretrainer: a built `BertPretrainer` (e.g. inside a distribution scope).
        path: a Hugging Face directory, a TF1 release directory (`bert_model.ckpt.*`
            beside `vocab.txt`), a directory with a TF `checkpoint` file, or a TF1
            checkpoint prefix.
        vocab_file: the vocabulary the model will be trained with; compared by content
            with the `vocab.txt` beside the checkpoint, when there is one.
        do_lower_case: the casing it will use; compared with `tokenizer_config.json`
            when the checkpoint records it (Google's releases do not).

    Returns the `ImportReport` (the caller prints it; this prints nothing). Missing
    pre-training heads (MLM transform/bias, NSP) keep their initial values and are
    listed in `report.missing_heads`.

    Raises (before any weight is assigned): `ValueError` for a vocabulary, casing or
    config mismatch or a shape mismatch; `importer.MissingEncoderWeightsError` (a
    `ValueError` whose message ends with the report) when any encoder weight is
    missing; `FileNotFoundError` when `path` holds no checkpoint.
    """
    source, notes = _checked_source(path, vocab_file, do_lower_case,
                                    pretrainer.encoder.config)
    google, source_name, unused, skipped = sources.read_google_weights(source)
    return importer.load_into(pretrainer, google, source_name, unused, skipped, notes)


def load_init_model_dir(pretrainer, model_dir):
    """Loads the weights of a pre-trained model directory into `pretrainer`.

    The same all-or-nothing load as `load_init_checkpoint` (the vocabulary and casing
    of a model directory are its own `vocab.txt` and `text_config.json`): a model
    without the NSP head leaves `pretrainer`'s NSP head initialised (listed in the
    report); a shape mismatch or missing encoder weight raises. Returns the report.
    """
    config, next_sentence, weights_file = pretrainer_layout(model_dir)
    if config == pretrainer.encoder.config and \
            next_sentence == pretrainer.next_sentence_prediction and \
            _stored_shapes(weights_file) == Counter(tuple(w.shape)
                                                    for w in pretrainer.weights):
        # The same model, and the file holds exactly its variables' shapes (so the
        # load cannot stop half-way on a mismatch): Keras reads the file straight
        # into it, without building a second model to copy from (~1 s for MiniLM
        # on 2 cores). Everything loads; nothing is missing.
        load_every_weight(pretrainer, weights_file)
        return importer.ImportReport(source=os.fspath(model_dir),
                                     loaded=list(model_variables(pretrainer)), unused=[],
                                     missing=[])
    source = load_pretrainer(model_dir)
    # In Google's layout, as every source reaches `load_into` (which transposes the
    # NSP output weights back).
    weights = {name: to_google_layout(name, ops.convert_to_numpy(variable))
               for name, variable in model_variables(source).items()}
    return importer.load_into(pretrainer, weights, os.fspath(model_dir))


def _check_weights_exist(source):
    if source.format == "hf":
        if not any(os.path.isfile(os.path.join(source.directory, name))
                   for name in sources.HF_WEIGHT_FILES):
            raise FileNotFoundError(f"{source.directory} has neither "
                                    f"{' nor '.join(sources.HF_WEIGHT_FILES)}.")
        return
    weights = source.weights
    if os.path.isdir(weights):
        if not os.path.isfile(os.path.join(weights, "checkpoint")):
            raise FileNotFoundError(
                f"{weights} holds no TF checkpoint: neither "
                f"{sources.TF1_CHECKPOINT_PREFIX}.index nor a `checkpoint` file.")
    elif not (os.path.isfile(weights + ".index") or os.path.isfile(weights)):
        raise FileNotFoundError(f"No TF checkpoint at {weights} ({weights}.index is "
                                "missing).")


def _stored_shapes(weights_file):
    """The shapes of every array a Keras `.weights.h5` file holds, counted."""
    import h5py

    shapes = Counter()
    with h5py.File(weights_file, "r") as f:
        f.visititems(lambda _, item: shapes.update([tuple(item.shape)])
                     if isinstance(item, h5py.Dataset) else None)
    return shapes
