"""Checkpoint directories for the import tests, written the way their tools write them:
Hugging Face's by `transformers.save_pretrained`, Google's TF1 ones by a TF1 `Saver`."""

import json
import os
import tempfile

import numpy as np

from keras_bert_app import names
from tests.helpers import TINY_VOCAB, tiny_config


def write_vocab(path, size=TINY_VOCAB, swap=None):
    """A BERT vocabulary of `size` tokens; `swap=(i, j)` exchanges two of them."""
    tokens = list(names.SPECIAL_TOKENS) + [f"tok{i}" for i in range(size -
                                                                   len(names.SPECIAL_TOKENS))]
    if swap:
        i, j = swap
        tokens[i], tokens[j] = tokens[j], tokens[i]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return str(path)


def write_tiny_hf_dir(directory, heads=True, key_prefix="", do_lower_case=True, seed=0):
    """A tiny `transformers` BERT (`tiny_config()`'s shape) saved as safetensors, with
    `vocab.txt` and `tokenizer_config.json`. `heads`: a `BertForPreTraining` (46
    keys) or a bare `BertModel` (39); `key_prefix` is put before every key, as a
    wrapper module would. Returns `{key: array}` as saved."""
    # Nothing is downloaded; any cache goes to a scratch folder (Bazel's sandbox has
    # no writable home).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_"))
    import torch
    import transformers
    from safetensors.numpy import load_file, save_file

    config = tiny_config()
    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings)
    torch.manual_seed(seed)
    model_class = transformers.BertForPreTraining if heads else transformers.BertModel
    directory = str(directory)
    model_class(hf_config).save_pretrained(directory)
    weights_file = os.path.join(directory, "model.safetensors")
    weights = {key_prefix + key: value for key, value in load_file(weights_file).items()}
    save_file(weights, weights_file)
    write_vocab(os.path.join(directory, names.VOCAB_FILE))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": do_lower_case}, f)
    return weights


def write_tf1_checkpoint(prefix, weights, extra=None):
    """Saves `{google_name: array}` (plus `extra` variables, e.g. optimizer slots) as a
    TF1 checkpoint at `prefix` (`.../bert_model.ckpt`), as Google's code did."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    arrays = {**weights, **(extra or {})}
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(np.asarray(value), name=name)
                     for name, value in arrays.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, prefix)
    return prefix
