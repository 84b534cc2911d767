"""BertConfig: Google's field names, presets, JSON in both dialects, validation."""

import json
import sys

import pytest

from keras_bert_app.config import BertConfig

# Google's released bert_config.json of BERT-Base, Uncased, as shipped.
GOOGLE_BERT_BASE_JSON = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "max_position_embeddings": 512,
    "num_attention_heads": 12, "num_hidden_layers": 12, "type_vocab_size": 2,
    "vocab_size": 30522,
}

# A Hugging Face config.json of a 6-layer MiniLM BERT (the layout transformers writes).
HF_MINILM_JSON = {
    "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
    "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 384, "initializer_range": 0.02, "intermediate_size": 1536,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
    "position_embedding_type": "absolute", "transformers_version": "4.8.2",
    "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522,
}


def write_json(tmp_path, values, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(values))
    return path


@pytest.mark.parametrize("name, layers, hidden, heads", [
    ("bert_tiny", 2, 128, 2), ("bert_mini", 4, 256, 4), ("bert_small", 4, 512, 8),
    ("bert_medium", 8, 512, 8), ("bert_base", 12, 768, 12), ("bert_large", 24, 1024, 16),
])
def test_presets_have_the_published_shapes(name, layers, hidden, heads):
    config = BertConfig.from_preset(name)
    assert (config.num_hidden_layers, config.hidden_size,
            config.num_attention_heads) == (layers, hidden, heads)
    assert config.intermediate_size == 4 * hidden
    assert (config.vocab_size, config.max_position_embeddings,
            config.type_vocab_size) == (30522, 512, 2)
    assert config.layer_norm_eps == 1e-12 and config.hidden_act == "gelu"


def test_preset_overrides_and_unknown_preset():
    assert BertConfig.from_preset("bert_tiny", vocab_size=1000).vocab_size == 1000
    with pytest.raises(ValueError, match="Unknown BertConfig preset 'bert_huge'"):
        BertConfig.from_preset("bert_huge")


def test_reads_googles_bert_config_json(tmp_path):
    config = BertConfig.from_json_file(write_json(tmp_path, GOOGLE_BERT_BASE_JSON))
    assert config == BertConfig.from_preset("bert_base")


def test_reads_hugging_face_config_json_ignoring_metadata(tmp_path):
    config = BertConfig.from_json_file(write_json(tmp_path, HF_MINILM_JSON))
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size) == (6, 384, 12, 1536)
    assert config.hidden_act == "gelu" and config.layer_norm_eps == 1e-12


def test_json_round_trip(tmp_path):
    config = BertConfig.from_preset("bert_mini", embedding_size=64, share_layers=True,
                                    hidden_act="gelu_approximate")
    path = tmp_path / "bert_config.json"
    config.to_json_file(path)
    assert BertConfig.from_json_file(path) == config


@pytest.mark.parametrize("values, message", [
    ({**HF_MINILM_JSON, "position_embedding_type": "relative_key"},
     "position_embedding_type='relative_key' is not supported"),
    ({**HF_MINILM_JSON, "model_type": "roberta"}, "model_type='roberta' is not a BERT"),
    ({**HF_MINILM_JSON, "is_decoder": True}, "is_decoder=True is not supported"),
    ({k: v for k, v in GOOGLE_BERT_BASE_JSON.items() if k != "hidden_size"},
     r"missing required config fields \['hidden_size'\]"),
    ({**GOOGLE_BERT_BASE_JSON, "num_attention_heads": 7}, "not divisible"),
    ([1, 2], "expected a JSON object"),
])
def test_json_errors_name_the_file_and_the_problem(tmp_path, values, message):
    path = write_json(tmp_path, values)
    with pytest.raises(ValueError, match=message) as info:
        BertConfig.from_json_file(path)
    assert str(path) in str(info.value)


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text('{\n  "hidden_size": 768,\n  "vocab_size": ,\n}')
    with pytest.raises(ValueError, match=r"not valid JSON \(line 3, column 17\)"):
        BertConfig.from_json_file(path)


@pytest.mark.parametrize("overrides, message", [
    (dict(hidden_size=100, num_attention_heads=12),
     "hidden_size=100 is not divisible by num_attention_heads=12"),
    (dict(num_hidden_layers=0), "num_hidden_layers=0 must be a positive integer"),
    (dict(vocab_size=-5), "vocab_size=-5 must be a positive integer"),
    (dict(hidden_size=76.8), "hidden_size=76.8 must be a positive integer"),
    (dict(embedding_size=0), "embedding_size=0 must be a positive integer"),
    (dict(hidden_act="gelu_fast"), "unknown hidden_act='gelu_fast'"),
    (dict(hidden_dropout_prob=1.0), r"hidden_dropout_prob=1.0 must be a number in \[0, 1\)"),
    (dict(attention_probs_dropout_prob=-0.1), "attention_probs_dropout_prob=-0.1"),
    (dict(initializer_range=0), "initializer_range=0 must be a positive number"),
    (dict(layer_norm_eps=-1e-12), "layer_norm_eps=-1e-12 must be a positive number"),
    (dict(share_layers="yes"), "share_layers='yes' must be true or false"),
])
def test_invalid_fields_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(**overrides)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown fields \['hiden_size'\]"):
        BertConfig.from_dict({"hiden_size": 768})


def test_sequence_length_must_fit_the_position_table():
    config = BertConfig.from_preset("bert_tiny")
    config.validate_sequence_length(512)
    with pytest.raises(ValueError, match="Sequence length 513 exceeds "
                                         "max_position_embeddings=512"):
        config.validate_sequence_length(513)


def test_every_supported_activation_is_accepted():
    for act in ("gelu", "gelu_approximate", "gelu_new", "gelu_pytorch_tanh", "relu",
                "silu", "swish", "tanh", "linear"):
        assert BertConfig(hidden_act=act).hidden_act == act


def test_derived_sizes():
    config = BertConfig.from_preset("bert_base", embedding_size=128)
    assert config.head_size == 64 and config.effective_embedding_size == 128
    assert BertConfig.from_preset("bert_base").effective_embedding_size == 768


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
