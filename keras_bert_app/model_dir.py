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
    pretrainer.save_weights(os.path.join(output_dir, names.WEIGHTS_FILE))


def load_pretrainer(model_dir, dtype=None):
    """The `BertPretrainer` (encoder + MLM and NSP heads) saved in `model_dir`."""
    config_file, weights_file = model_dir_files(model_dir, names.BERT_CONFIG_FILE,
                                                names.WEIGHTS_FILE)
    pretrainer = BertPretrainer(BertEncoder(BertConfig.from_json_file(config_file),
                                            dtype=dtype))
    pretrainer.load_weights(weights_file)
    return pretrainer


def load_encoder(model_dir, dtype=None):
    """The pre-trained `BertEncoder` of `model_dir`."""
    return load_pretrainer(model_dir, dtype=dtype).encoder
