"""Pre-trained model directories: written whole, read back whole, checked."""

import sys

import numpy as np
import pytest

import keras_bert_app as kba
from keras_bert_app import names
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.text.text_config import TextConfig
from tests.helpers import encoder_batch, tiny_config


def write_vocab(path):
    tokens = list(names.SPECIAL_TOKENS) + [f"w{i}" for i in range(92)]
    path.write_text("\n".join(tokens) + "\n")
    return str(path)


def test_round_trip(tmp_path):
    vocab = write_vocab(tmp_path / "source_vocab.txt")
    pretrainer = BertPretrainer(BertEncoder(tiny_config()))
    save_model_dir(str(tmp_path / "model"), pretrainer, vocab,
                   TextConfig.for_vocab(vocab, do_lower_case=False))
    for name in (names.BERT_CONFIG_FILE, names.VOCAB_FILE, names.TEXT_CONFIG_FILE,
                 names.WEIGHTS_FILE):
        assert (tmp_path / "model" / name).is_file()
    encoder = kba.load_encoder(str(tmp_path / "model"))
    assert encoder.config == tiny_config()
    batch = encoder_batch()
    np.testing.assert_array_equal(np.asarray(encoder(batch)[names.POOLED_OUTPUT]),
                                  np.asarray(pretrainer.encoder(batch)[names.POOLED_OUTPUT]))
    preprocessor = kba.load_preprocessor(str(tmp_path / "model"), seq_length=16)
    assert preprocessor.text_config.do_lower_case is False


def test_missing_files_and_a_foreign_vocabulary_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="bert_config.json is missing"):
        kba.load_encoder(str(tmp_path))
    vocab = write_vocab(tmp_path / "a.txt")
    other = tmp_path / "b.txt"
    other.write_text("\n".join(list(names.SPECIAL_TOKENS) + ["x"]) + "\n")
    with pytest.raises(ValueError, match="is not the vocabulary these text settings"):
        save_model_dir(str(tmp_path / "model"), BertPretrainer(BertEncoder(tiny_config())),
                       str(other), TextConfig.for_vocab(vocab, do_lower_case=True))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
