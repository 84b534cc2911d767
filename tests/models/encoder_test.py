"""BertEncoder: parameter counts, the TF Hub interface, padding and dropout behaviour."""

import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.config import BertConfig
from keras_bert_app.layers.initializers import weights_set_after
from keras_bert_app.models import BertEncoder
from tests.encoder_params import expected_parameter_count
from tests.helpers import encoder_batch, tiny_config, to_numpy


@pytest.mark.parametrize("preset, count", [
    ("bert_base", 109_482_240),
    # Three times bert_base's size: 1.3 GB of zeros more per backend suite, for the
    # same layers; counted under TensorFlow.
    pytest.param("bert_large", 335_141_888, marks=pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="bert_large is counted under TensorFlow; bert_base on every backend")),
])
def test_published_parameter_counts(preset, count):
    config = BertConfig.from_preset(preset)
    assert expected_parameter_count(config) == count
    # Counting needs shapes, not values: random initialisation alone took 7-25 s
    # under JAX and torch in CI runs.
    with weights_set_after():
        assert BertEncoder(config).count_params() == count


@pytest.mark.parametrize("preset", ["bert_tiny", "bert_mini", "bert_small", "bert_medium"])
def test_other_presets_match_the_formula(preset):
    config = BertConfig.from_preset(preset)
    assert BertEncoder(config).count_params() == expected_parameter_count(config)


def test_albert_options_change_parameter_counts_as_expected():
    base = tiny_config(num_hidden_layers=4)
    shared = tiny_config(num_hidden_layers=4, share_layers=True)
    factorised = tiny_config(num_hidden_layers=4, embedding_size=8)
    counts = {c: BertEncoder(c).count_params() for c in (base, shared, factorised)}
    for config, count in counts.items():
        assert count == expected_parameter_count(config)
    block = (expected_parameter_count(tiny_config(num_hidden_layers=2))
             - expected_parameter_count(tiny_config(num_hidden_layers=1)))
    assert counts[base] - counts[shared] == 3 * block
    assert counts[factorised] < counts[base]


def test_outputs_follow_the_tf_hub_encoder_interface():
    config = tiny_config()
    encoder = BertEncoder(config)
    out = to_numpy(encoder(encoder_batch(batch=3, seq=10)))
    assert set(out) == {names.SEQUENCE_OUTPUT, names.POOLED_OUTPUT, names.ENCODER_OUTPUTS}
    assert out[names.SEQUENCE_OUTPUT].shape == (3, 10, 32)
    assert out[names.POOLED_OUTPUT].shape == (3, 32)
    assert len(out[names.ENCODER_OUTPUTS]) == config.num_hidden_layers
    np.testing.assert_array_equal(out[names.ENCODER_OUTPUTS][-1], out[names.SEQUENCE_OUTPUT])
    assert np.abs(out[names.POOLED_OUTPUT]).max() <= 1.0  # tanh


def test_pooled_output_is_dense_tanh_of_the_first_token():
    encoder = BertEncoder(tiny_config())
    out = to_numpy(encoder(encoder_batch()))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in encoder.pooler.weights)
    expected = np.tanh(out[names.SEQUENCE_OUTPUT][:, 0] @ kernel + bias)
    np.testing.assert_allclose(out[names.POOLED_OUTPUT], expected, atol=1e-6)


def test_shared_layers_still_report_one_output_per_layer():
    encoder = BertEncoder(tiny_config(num_hidden_layers=3, share_layers=True))
    out = to_numpy(encoder(encoder_batch()))
    assert len(out[names.ENCODER_OUTPUTS]) == 3
    assert len({id(layer) for layer in encoder.transformer_layers}) == 1
    # The same weights applied again transform the sequence further.
    assert not np.allclose(out[names.ENCODER_OUTPUTS][0], out[names.ENCODER_OUTPUTS][1])


@pytest.mark.parametrize("overrides", [{}, {"embedding_size": 8}, {"share_layers": True}])
def test_real_positions_do_not_depend_on_the_amount_of_padding(overrides):
    encoder = BertEncoder(tiny_config(**overrides))
    real = encoder_batch(batch=2, seq=9, lengths=[9, 6], seed=4)
    reference = to_numpy(encoder(real))
    for padded_length in (12, 32):
        pad = padded_length - 9
        padded = {k: np.pad(v, ((0, 0), (0, pad))) for k, v in real.items()}
        # Garbage word ids under the padding must not matter either.
        padded[names.INPUT_WORD_IDS][:, 9:] = 5
        out = to_numpy(encoder(padded))
        for row, length in enumerate([9, 6]):
            np.testing.assert_allclose(
                out[names.SEQUENCE_OUTPUT][row, :length],
                reference[names.SEQUENCE_OUTPUT][row, :length], atol=1e-6)
        np.testing.assert_allclose(out[names.POOLED_OUTPUT],
                                   reference[names.POOLED_OUTPUT], atol=1e-6)


def test_dropout_is_off_at_inference_and_on_in_training():
    encoder = BertEncoder(tiny_config(hidden_dropout_prob=0.1,
                                      attention_probs_dropout_prob=0.1))
    batch = encoder_batch()
    first = to_numpy(encoder(batch))[names.SEQUENCE_OUTPUT]
    np.testing.assert_array_equal(first, to_numpy(encoder(batch))[names.SEQUENCE_OUTPUT])
    # predict() is compiled (XLA on jax): equal up to float32 rounding, not bit for bit.
    np.testing.assert_allclose(
        first, to_numpy(encoder.predict(batch, verbose=0))[names.SEQUENCE_OUTPUT],
        atol=1e-5)
    trained = to_numpy(encoder(batch, training=True))[names.SEQUENCE_OUTPUT]
    assert not np.allclose(first, trained)


def test_sequence_longer_than_the_position_table_is_a_clear_error():
    encoder = BertEncoder(tiny_config(max_position_embeddings=16))
    with pytest.raises(ValueError, match="sequence length 20 exceeds "
                                         "max_position_embeddings=16"):
        encoder(encoder_batch(seq=20))


def test_config_may_be_given_as_a_dict_and_is_validated():
    assert BertEncoder(tiny_config().to_dict()).config == tiny_config()
    with pytest.raises(TypeError, match="BertEncoder needs a BertConfig"):
        BertEncoder("bert_base")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
