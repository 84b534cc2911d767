"""Pre-trained model directories: `bert_config.json`, `vocab.txt`, `text_config.json`
and `model.weights.h5` (a `BertPretrainer`'s weights), taken whole by every pipeline."""

import os
import shutil

from keras_bert_app import names
from keras_bert_app.config import BertConfig
from keras_bert_app.models import BertEncoder, BertPretrainer


def model_dir_files(model_dir, *file_names):
    """Paths of `file_names` in `model_dir`; an error naming the first one missing."""
    paths = [os.path.join(os.fspath(model_dir), name) for name in file_names]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{model_dir} is not a pre-trained model directory: "
                                    f"{os.path.basename(path)} is missing.")
    return paths


def save_model_dir(output_dir, pretrainer, vocab_file, text_config):
    """Writes a pre-trained model directory."""
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
    partial = os.path.join(output_dir, ".partial." + names.WEIGHTS_FILE)
    pretrainer.save_weights(partial)
    os.replace(partial, os.path.join(output_dir, names.WEIGHTS_FILE))


def load_pretrainer(model_dir, dtype=None):
    """The `BertPretrainer` (encoder + MLM and NSP heads) saved in `model_dir`."""
    config_file, weights_file = model_dir_files(model_dir, names.BERT_CONFIG_FILE,
                                                names.WEIGHTS_FILE)
    pretrainer = BertPretrainer(BertEncoder(BertConfig.from_json_file(config_file),
                                            dtype=dtype),
                                next_sentence_prediction=_has_nsp_head(weights_file))
    pretrainer.load_weights(weights_file)
    return pretrainer


def _has_nsp_head(weights_file):
    """Whether the saved pretrainer had the NSP/SOP head (masked-LM-only runs have
    none). Keras names the head's group after its class: `dense` is the only Dense
    layer directly inside a BertPretrainer."""
    import h5py

    with h5py.File(weights_file, "r") as f:
        return "dense" in f.get("layers", {})


def load_encoder(model_dir, dtype=None):
    """The pre-trained `BertEncoder` of `model_dir`."""
    return load_pretrainer(model_dir, dtype=dtype).encoder
