"""`BertConfig`: the architecture of a BERT model, with Google's field names and presets."""

import dataclasses
import json
import os
from typing import Optional

from keras_bert_app.layers.activations import ACTIVATION_NAMES

# L/H/A of each preset; intermediate size is 4H, vocabulary 30522 (uncased English),
# 512 positions and 2 segment types, as in Google's released checkpoints.
_PRESET_SHAPES = {
    "bert_tiny": (2, 128, 2),
    "bert_mini": (4, 256, 4),
    "bert_small": (4, 512, 8),
    "bert_medium": (8, 512, 8),
    "bert_base": (12, 768, 12),
    "bert_large": (24, 1024, 16),
}

# Keys of a Hugging Face `config.json` that describe things this model does not have;
# a value other than the listed one cannot be honoured and is an error, not a silent
# difference.
_HF_REQUIRED_VALUES = {
    "position_embedding_type": "absolute",
    "is_decoder": False,
    "add_cross_attention": False,
}
# Hugging Face model types whose weights and computation are BERT's.
_HF_BERT_MODEL_TYPES = ("bert",)


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Architecture of a BERT (or ALBERT-style) encoder.

    Field names are those of Google's `bert_config.json`, so a released config reads
    unchanged; Hugging Face's `config.json` reads too (`from_json_file`).

    Args:
        vocab_size: number of WordPiece tokens.
        hidden_size: width H of every transformer layer.
        num_hidden_layers: number of transformer layers L.
        num_attention_heads: heads A; must divide `hidden_size`.
        intermediate_size: width of the feed-forward layer (4H in BERT).
        hidden_act: feed-forward and MLM-transform activation: `gelu` (exact erf),
            `gelu_approximate`/`gelu_new`/`gelu_pytorch_tanh` (tanh), `relu`, `silu`,
            `swish`, `tanh`, `linear`.
        hidden_dropout_prob: dropout on embeddings and on every residual branch.
        attention_probs_dropout_prob: dropout on attention probabilities.
        max_position_embeddings: longest sequence the position table covers.
        type_vocab_size: number of segment types.
        initializer_range: stddev of the truncated-normal weight initializer.
        layer_norm_eps: LayerNorm epsilon (BERT: 1e-12).
        embedding_size: width E of the embedding tables; None means E = H. With E != H
            the embeddings are projected to H (ALBERT factorisation).
        share_layers: one set of transformer weights used by every layer (ALBERT).

    Example:
    >>> config = BertConfig.from_preset("bert_tiny")
    >>> config.hidden_size, config.num_hidden_layers
    (128, 2)
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    embedding_size: Optional[int] = None
    share_layers: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers",
                     "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            _check_positive_int(name, getattr(self, name))
        if self.embedding_size is not None:
            _check_positive_int("embedding_size", self.embedding_size)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"BertConfig: hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}; each head needs "
                "hidden_size / num_attention_heads dimensions.")
        if self.hidden_act not in ACTIVATION_NAMES:
            raise ValueError(
                f"BertConfig: unknown hidden_act={self.hidden_act!r}; expected one of "
                f"{sorted(ACTIVATION_NAMES)}.")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"BertConfig: {name}={value!r} must be a number in [0, 1).")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"BertConfig: {name}={value!r} must be a positive number.")
        if not isinstance(self.share_layers, bool):
            raise ValueError(f"BertConfig: share_layers={self.share_layers!r} must be true or false.")

    @property
    def head_size(self):
        return self.hidden_size // self.num_attention_heads

    @property
    def effective_embedding_size(self):
        """Width of the embedding tables (E); equals `hidden_size` unless factorised."""
        return self.embedding_size or self.hidden_size

    def validate_sequence_length(self, seq_length):
        """Raises a clear error if `seq_length` tokens do not fit the position table."""
        if seq_length > self.max_position_embeddings:
            raise ValueError(
                f"Sequence length {seq_length} exceeds max_position_embeddings="
                f"{self.max_position_embeddings} of this BertConfig; use a shorter "
                "max_seq_length or a model with a longer position table.")

    # ---------------------------------------------------------------- construction

    @classmethod
    def presets(cls):
        """Names accepted by `from_preset`."""
        return tuple(_PRESET_SHAPES)

    @classmethod
    def from_preset(cls, name, **overrides):
        """A config of the standard BERT sizes (`bert_tiny` … `bert_large`).

        `overrides` replace fields, e.g. `from_preset("bert_tiny", vocab_size=1000)`.
        """
        if name not in _PRESET_SHAPES:
            raise ValueError(f"Unknown BertConfig preset {name!r}; expected one of "
                             f"{list(_PRESET_SHAPES)}.")
        layers, hidden, heads = _PRESET_SHAPES[name]
        fields = dict(num_hidden_layers=layers, hidden_size=hidden,
                      num_attention_heads=heads, intermediate_size=4 * hidden)
        fields.update(overrides)
        return cls.from_dict(fields)

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a dict of fields; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"BertConfig: unknown fields {unknown}; known fields are "
                             f"{sorted(known)}.")
        return cls(**values)

    @classmethod
    def from_json_file(cls, path):
        """Reads Google's `bert_config.json` or Hugging Face's `config.json`.

        Keys of a Hugging Face config that do not describe the architecture
        (`architectures`, `pad_token_id`, `transformers_version`, ...) are ignored;
        keys that describe an architecture this model cannot compute (relative
        positions, a decoder, a non-BERT model type) are an error naming the key.
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column "
                             f"{e.colno}): {e.msg}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 JSON (byte {e.start}: a binary or "
                             "pickled file?)") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of config fields, got "
                             f"{type(values).__name__}.")
        model_type = values.get("model_type")
        if model_type is not None and model_type not in _HF_BERT_MODEL_TYPES:
            raise ValueError(f"{path}: model_type={model_type!r} is not a BERT model "
                             f"(expected one of {list(_HF_BERT_MODEL_TYPES)}).")
        for key, required in _HF_REQUIRED_VALUES.items():
            if key in values and values[key] != required:
                raise ValueError(f"{path}: {key}={values[key]!r} is not supported; this "
                                 f"BERT implementation needs {key}={required!r}.")
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in values.items() if k in known}
        missing = sorted(k for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                     "num_attention_heads", "intermediate_size")
                         if k not in fields)
        if missing:
            raise ValueError(f"{path}: missing required config fields {missing}.")
        try:
            return cls(**fields)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path):
        """Writes the fields as JSON (Google's names; `from_json_file` reads it back)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"BertConfig: {name}={value!r} must be a positive integer.")
