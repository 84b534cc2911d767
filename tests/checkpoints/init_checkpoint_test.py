"""Starting a model from a checkpoint (`--init_checkpoint`, `--init_model_dir`): all
encoder weights or an error with the import report, nothing half-loaded; the
vocabulary and casing must be the checkpoint's own."""

import os
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from keras import ops

from keras_bert_app import names
from keras_bert_app.checkpoints import (MissingEncoderWeightsError, check_init_checkpoint,
                                        importer, load_init_checkpoint,
                                        load_init_model_dir)
from keras_bert_app.checkpoints.weight_names import model_variables, to_google_layout
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.text.text_config import TextConfig
from tests.checkpoints.checkpoint_files import (write_tf1_checkpoint, write_tiny_hf_dir,
                                                write_vocab)
from tests.helpers import tiny_config


def new_pretrainer(**config_overrides):
    return BertPretrainer(BertEncoder(tiny_config(**config_overrides)))


def weights_of(pretrainer):
    return [ops.convert_to_numpy(w) for w in pretrainer.weights]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hf")
    return str(directory), write_tiny_hf_dir(directory)


@pytest.fixture(scope="module")
def tf1_dir(tmp_path_factory, hf_dir):
    """A Google-style release: bert_model.ckpt.*, bert_config.json, vocab.txt."""
    directory = tmp_path_factory.mktemp("uncased_L-2_H-32_A-4")
    google, _, _ = importer.hf_to_google(hf_dir[1])
    write_tf1_checkpoint(str(directory / "bert_model.ckpt"), google)
    tiny_config().to_json_file(str(directory / names.BERT_CONFIG_FILE))
    shutil.copy(os.path.join(hf_dir[0], names.VOCAB_FILE), directory / names.VOCAB_FILE)
    return str(directory)


def test_hugging_face_directory_loads_every_weight(hf_dir):
    directory, saved = hf_dir
    pretrainer = new_pretrainer()
    report = load_init_checkpoint(pretrainer, directory,
                                  os.path.join(directory, names.VOCAB_FILE), True)
    assert (len(report.loaded), report.missing, report.unused) == (46, [], [])
    np.testing.assert_array_equal(
        ops.convert_to_numpy(pretrainer.encoder.embeddings.word_embeddings.embeddings),
        saved["bert.embeddings.word_embeddings.weight"])


def test_keys_under_an_unexpected_prefix_are_an_error_and_load_nothing(tmp_path):
    directory = tmp_path / "wrapped"
    write_tiny_hf_dir(directory, key_prefix="model.")
    pretrainer = new_pretrainer()
    before = weights_of(pretrainer)
    with pytest.raises(MissingEncoderWeightsError) as error:
        load_init_checkpoint(pretrainer, str(directory))
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert "lacks 39 of the encoder's 39 weights" in message.splitlines()[0]
    # The report follows the one-line summary: what was there instead.
    assert "  loaded: 0 weights" in message
    assert "    model.bert.embeddings.word_embeddings.weight" in message
    assert error.value.report.missing_encoder[0] == "bert/embeddings/word_embeddings"
    for old, new in zip(before, weights_of(pretrainer)):
        np.testing.assert_array_equal(old, new)


def test_one_missing_encoder_weight_is_an_error(hf_dir, tmp_path):
    from safetensors.numpy import save_file

    directory, saved = hf_dir
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.json", names.VOCAB_FILE, "tokenizer_config.json"):
        shutil.copy(os.path.join(directory, name), partial / name)
    save_file({k: v for k, v in saved.items() if k != "bert.pooler.dense.weight"},
              str(partial / "model.safetensors"))
    with pytest.raises(MissingEncoderWeightsError,
                       match=r"lacks 1 of the encoder's 39 weights \(e.g. bert/pooler/"
                             r"dense/kernel\); 45 matched, 0 source entries unused"):
        load_init_checkpoint(new_pretrainer(), str(partial))


def test_missing_heads_are_reported_not_an_error(tmp_path):
    directory = tmp_path / "bare"
    write_tiny_hf_dir(directory, heads=False)
    report = load_init_checkpoint(new_pretrainer(), str(directory))
    assert report.missing_encoder == []
    assert report.missing_heads == report.missing == [
        "cls/predictions/transform/dense/kernel", "cls/predictions/transform/dense/bias",
        "cls/predictions/transform/LayerNorm/gamma",
        "cls/predictions/transform/LayerNorm/beta", "cls/predictions/output_bias",
        "cls/seq_relationship/output_weights", "cls/seq_relationship/output_bias"]


def test_vocabulary_is_compared_by_content(hf_dir, tmp_path):
    directory, _ = hf_dir
    same = shutil.copy(os.path.join(directory, names.VOCAB_FILE), tmp_path / "same.txt")
    assert load_init_checkpoint(new_pretrainer(), directory, str(same)).missing == []
    other = write_vocab(tmp_path / "other.txt", swap=(5, 6))
    with pytest.raises(ValueError) as error:
        load_init_checkpoint(new_pretrainer(), directory, other)
    assert str(error.value).startswith(
        f"{other} is not the vocabulary of the checkpoint, "
        f"{os.path.join(directory, names.VOCAB_FILE)} (line 6: 'tok1' vs 'tok0')")
    shorter = write_vocab(tmp_path / "shorter.txt", size=90)
    with pytest.raises(ValueError, match="90 tokens vs 97"):
        check_init_checkpoint(directory, shorter)


def test_casing_must_match_tokenizer_config(hf_dir):
    directory, _ = hf_dir
    with pytest.raises(ValueError, match="do_lower_case=False contradicts .*"
                                         "tokenizer_config.json \\(do_lower_case=True\\)"):
        load_init_checkpoint(new_pretrainer(), directory, None, False)


def test_google_release_directory_and_prefix(hf_dir, tf1_dir, tmp_path):
    vocab = os.path.join(hf_dir[0], names.VOCAB_FILE)
    for path in (tf1_dir, os.path.join(tf1_dir, "bert_model.ckpt")):
        pretrainer = new_pretrainer()
        report = load_init_checkpoint(pretrainer, path, vocab, True)
        assert (len(report.loaded), report.missing) == (46, [])
        # Google's files do not record the casing: said, not guessed.
        assert report.notes == [f"casing not checked: {tf1_dir} does not record "
                                "do_lower_case"]
    other = write_vocab(tmp_path / "other.txt", swap=(10, 20))
    with pytest.raises(ValueError, match=f"{other} is not the vocabulary of the "
                                         f"checkpoint, {tf1_dir}/vocab.txt"):
        load_init_checkpoint(new_pretrainer(), tf1_dir, other, True)


def test_checkpoint_without_vocabulary_beside_it_is_loaded_with_a_note(hf_dir, tmp_path):
    google, _, _ = importer.hf_to_google(hf_dir[1])
    prefix = write_tf1_checkpoint(str(tmp_path / "run" / "model.ckpt-100"), google)
    report = load_init_checkpoint(new_pretrainer(), prefix, hf_dir[0] + "/vocab.txt")
    assert report.missing == []
    assert report.notes == [f"vocabulary not checked: {tmp_path / 'run'} has no vocab.txt"]
    assert "  note: vocabulary not checked" in report.format()


def test_config_field_the_shapes_do_not_show(tf1_dir):
    with pytest.raises(ValueError, match=r"num_attention_heads=2 contradicts .*"
                                         r"bert_config.json \(num_attention_heads=4\)"):
        load_init_checkpoint(new_pretrainer(num_attention_heads=2), tf1_dir)
    with pytest.raises(ValueError, match="Shape mismatch for bert/encoder/layer_0/"
                                         "intermediate/dense/kernel"):
        load_init_checkpoint(new_pretrainer(intermediate_size=48), tf1_dir)


def test_no_checkpoint_at_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No TF checkpoint at .*nowhere"):
        check_init_checkpoint(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="holds no TF checkpoint"):
        check_init_checkpoint(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor"):
        check_init_checkpoint(str(tmp_path))


@pytest.mark.parametrize("nsp", [False, True])
def test_model_directory_loads_in_its_own_layout(tmp_path, nsp):
    # Without the NSP head, the head is reported missing and keeps its initial values.
    # With it: its output kernel is [hidden, 2] here and [2, hidden] in Google's files,
    # and a model directory's own weights must not be transposed on the way in.
    source = BertPretrainer(BertEncoder(tiny_config()), next_sentence_prediction=nsp)
    vocab = write_vocab(tmp_path / "vocab.txt")
    save_model_dir(str(tmp_path / "model"), source, vocab, TextConfig.for_vocab(vocab, True))
    pretrainer = new_pretrainer()
    report = load_init_model_dir(pretrainer, str(tmp_path / "model"))
    assert report.missing == ([] if nsp else ["cls/seq_relationship/output_weights",
                                              "cls/seq_relationship/output_bias"])
    assert report.unused == [] and len(report.loaded) + len(report.missing) == \
        len(pretrainer.weights)
    compared = (source, pretrainer) if nsp else (source.encoder, pretrainer.encoder)
    for expected, actual in zip(*map(weights_of, compared)):
        np.testing.assert_array_equal(expected, actual)


def test_the_same_model_is_read_straight_from_the_file_to_the_same_report(tmp_path):
    # The same config and heads: Keras loads the file into the model, without a second
    # model to copy from; the report is what a copy would give.
    from keras_bert_app.checkpoints import importer

    source = BertPretrainer(BertEncoder(tiny_config()))
    vocab = write_vocab(tmp_path / "vocab.txt")
    save_model_dir(str(tmp_path / "model"), source, vocab, TextConfig.for_vocab(vocab, True))
    direct, copied = new_pretrainer(), new_pretrainer()
    calls = []
    original = importer.load_into
    importer.load_into = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    try:
        report = load_init_model_dir(direct, str(tmp_path / "model"))
    finally:
        importer.load_into = original
    assert calls == []  # no copy made
    expected = importer.load_into(copied, {
        name: to_google_layout(name, ops.convert_to_numpy(v))
        for name, v in model_variables(source).items()}, str(tmp_path / "model"))
    assert report.format() == expected.format()
    for a, b, c in zip(weights_of(source), weights_of(direct), weights_of(copied)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_a_file_whose_shapes_differ_from_its_config_loads_nothing(tmp_path):
    # bert_config.json says the model is the target's, the weights are another's: the
    # load is refused before any variable changes (all or nothing).
    vocab = write_vocab(tmp_path / "vocab.txt")
    save_model_dir(str(tmp_path / "model"), new_pretrainer(intermediate_size=48), vocab,
                   TextConfig.for_vocab(vocab, True))
    tiny_config().to_json_file(str(tmp_path / "model" / "bert_config.json"))
    pretrainer = new_pretrainer()
    before = weights_of(pretrainer)
    with pytest.raises(ValueError):
        load_init_model_dir(pretrainer, str(tmp_path / "model"))
    for a, b in zip(before, weights_of(pretrainer)):
        np.testing.assert_array_equal(a, b)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
