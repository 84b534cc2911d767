"""Importing Hugging Face and Google TF1 BERT checkpoints into a `BertPretrainer`."""

import dataclasses
import json
import os
import re

import numpy as np

from keras_bert_app.checkpoints.weight_names import (google_name_of_hf_key,
                                                     model_variables, to_model_layout)

# Google checkpoints also hold optimizer state; it is skipped, not reported as unused.
_OPTIMIZER_STATE = re.compile(r"(.*/(adam_[mv]|Adam(_1)?|LAMB(_1)?|Momentum)$)|global_step$")
# Hugging Face keys that duplicate a loaded weight (the MLM decoder is tied to the word
# embeddings; its bias is `cls.predictions.bias`) or are buffers, not weights.
_HF_TIED = {"cls.predictions.decoder.weight": "bert/embeddings/word_embeddings",
            "cls.predictions.decoder.bias": "cls/predictions/output_bias"}
_HF_BUFFERS = re.compile(r"(bert\.)?embeddings\.position_ids")
# Google names of the encoder's weights; the rest (`cls/`) are pre-training heads.
ENCODER_PREFIX = "bert/"


@dataclasses.dataclass
class ImportReport:
    """What an import loaded, skipped and lacked."""

    source: str
    loaded: list
    unused: list  # source entries that no model weight took
    missing: list  # model weights the source lacked (left at their initial values)
    skipped: list = dataclasses.field(default_factory=list)  # optimizer state, tied copies
    notes: list = dataclasses.field(default_factory=list)  # checks made or not possible

    @property
    def missing_encoder(self):
        """Missing weights of the encoder (pooler included): an import without them
        would be a randomly initialised model under a pre-trained name."""
        return [name for name in self.missing if name.startswith(ENCODER_PREFIX)]

    @property
    def missing_heads(self):
        """Missing pre-training head weights (MLM transform and bias, NSP): a bare
        encoder checkpoint has none; they start from their initial values."""
        return [name for name in self.missing if not name.startswith(ENCODER_PREFIX)]

    def format(self):
        lines = [f"Imported {self.source}",
                 f"  loaded: {len(self.loaded)} weights"]
        for title, items in (("not used from the source", self.unused),
                             ("missing from the source (initialised)", self.missing),
                             ("skipped (optimizer state, tied copies, buffers)",
                              self.skipped)):
            lines.append(f"  {title}: {len(items)}")
            lines.extend(f"    {name}" for name in items)
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


class MissingEncoderWeightsError(ValueError):
    """A checkpoint lacks encoder weights; `report` says what it held instead."""

    def __init__(self, report):
        missing = report.missing_encoder
        total = len(missing) + sum(name.startswith(ENCODER_PREFIX) for name in report.loaded)
        super().__init__(
            f"{report.source} lacks {len(missing)} of the encoder's {total} weights (e.g. "
            f"{missing[0]}); {len(report.loaded)} matched, {len(report.unused)} source "
            f"entries unused (the report below lists them). No weight was assigned."
            f"\n{report.format()}")
        self.report = report


def read_hf_weights(directory):
    """`{key: array}` from `model.safetensors` (NumPy only) or `pytorch_model.bin`."""
    safetensors_path = os.path.join(directory, "model.safetensors")
    torch_path = os.path.join(directory, "pytorch_model.bin")
    if os.path.isfile(safetensors_path):
        from safetensors.numpy import load_file

        return load_file(safetensors_path), safetensors_path
    if os.path.isfile(torch_path):
        try:
            import torch
        except ImportError:
            raise ImportError(f"{torch_path} is a PyTorch pickle and needs torch to read; "
                              "install torch or save the model as model.safetensors.") from None
        state = torch.load(torch_path, map_location="cpu", weights_only=True)
        return {k: v.numpy() for k, v in state.items()}, torch_path
    raise FileNotFoundError(f"{directory} has neither model.safetensors nor "
                            "pytorch_model.bin.")


def read_tf1_weights(checkpoint):
    """`{variable name: array}` from a TF1 checkpoint prefix (`bert_model.ckpt`)."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(checkpoint)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        raise FileNotFoundError(f"Cannot read a TF checkpoint at {checkpoint}: {e}") from None
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def hf_to_google(weights):
    """Hugging Face keys → `({google_name: array}, unused keys, skipped keys)`."""
    out, unused, skipped = {}, [], []
    for key in sorted(weights):
        bare = key[len("bert."):] if key.startswith("bert.") else key
        if bare in _HF_TIED or key in _HF_TIED or _HF_BUFFERS.fullmatch(key):
            skipped.append(key)
            continue
        mapped = google_name_of_hf_key(key)
        if mapped is None:
            unused.append(key)
            continue
        name, transpose = mapped
        array = np.asarray(weights[key])
        out[name] = array.T if transpose else array
    return out, unused, skipped


def tf1_to_google(weights):
    """Google TF1 names, optimizer state set aside."""
    out, skipped = {}, []
    for name in sorted(weights):
        if _OPTIMIZER_STATE.fullmatch(name):
            skipped.append(name)
        else:
            out[name] = np.asarray(weights[name])
    return out, skipped


def load_into(pretrainer, google_weights, source, unused=(), skipped=(), notes=()):
    """Assigns `google_weights` to `pretrainer` and returns the `ImportReport`.

    All or nothing: a shape mismatch (`ValueError`) or a missing encoder weight
    (`MissingEncoderWeightsError`, a `ValueError` whose message holds the report) is
    raised before any variable is assigned. Missing pre-training heads are not an
    error: they keep their initial values and the report lists them.
    """
    variables = model_variables(pretrainer)
    loaded, missing, arrays = [], [], {}
    for name, variable in variables.items():
        if name not in google_weights:
            missing.append(name)
            continue
        array = to_model_layout(name, google_weights[name])
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f"Shape mismatch for {name}: the checkpoint has "
                             f"{tuple(array.shape)}, the model (from its config) expects "
                             f"{tuple(variable.shape)}.")
        arrays[name] = array
        loaded.append(name)
    unused = sorted(set(unused) | (set(google_weights) - set(variables)))
    report = ImportReport(source=source, loaded=loaded, unused=unused, missing=missing,
                          skipped=list(skipped), notes=list(notes))
    if report.missing_encoder:
        raise MissingEncoderWeightsError(report)
    for name, array in arrays.items():
        variables[name].assign(array.astype(variables[name].dtype))
    return report


def hf_do_lower_case(directory):
    """`do_lower_case` from a Hugging Face `tokenizer_config.json`, or None."""
    path = os.path.join(directory, "tokenizer_config.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        value = json.load(f).get("do_lower_case")
    return value if isinstance(value, bool) else None
