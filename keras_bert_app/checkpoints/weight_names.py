"""One name for every BERT weight: Google's TF1 checkpoint variable names.

Both importers translate their source into these names; `model_variables` gives the
variable of a `BertPretrainer` under each of them.
"""

import re

import numpy as np

# Names whose stored layout is the transpose of ours: Google keeps the NSP kernel as
# `output_weights [2, hidden]`.
TRANSPOSED_IN_GOOGLE = frozenset({"cls/seq_relationship/output_weights"})


def model_variables(pretrainer):
    """`{google_name: keras.Variable}` for every weight of a `BertPretrainer`."""
    encoder = pretrainer.encoder
    if encoder.config.share_layers:
        raise ValueError("Checkpoint import supports BERT layouts; share_layers=True "
                         "(ALBERT) has no Google BERT variable names.")
    embeddings = encoder.embeddings
    out = {
        "bert/embeddings/word_embeddings": embeddings.word_embeddings.embeddings,
        "bert/embeddings/position_embeddings": embeddings.position_embeddings,
        "bert/embeddings/token_type_embeddings": embeddings.type_embeddings.embeddings,
    }
    out.update(_layer_norm("bert/embeddings/LayerNorm", embeddings.layer_norm))
    if embeddings.projection is not None:
        out.update(_dense("bert/encoder/embedding_hidden_mapping_in", embeddings.projection))
    for i, block in enumerate(encoder.transformer_layers):
        prefix = f"bert/encoder/layer_{i}"
        attention = block.attention
        out.update(_dense(f"{prefix}/attention/self/query", attention.query_dense))
        out.update(_dense(f"{prefix}/attention/self/key", attention.key_dense))
        out.update(_dense(f"{prefix}/attention/self/value", attention.value_dense))
        out.update(_dense(f"{prefix}/attention/output/dense", attention.output_dense))
        out.update(_layer_norm(f"{prefix}/attention/output/LayerNorm",
                               block.attention_layer_norm))
        out.update(_dense(f"{prefix}/intermediate/dense", block.intermediate_dense))
        out.update(_dense(f"{prefix}/output/dense", block.output_dense))
        out.update(_layer_norm(f"{prefix}/output/LayerNorm", block.output_layer_norm))
    out.update(_dense("bert/pooler/dense", encoder.pooler))
    head = pretrainer.mlm_head
    out.update(_dense("cls/predictions/transform/dense", head.transform_dense))
    out.update(_layer_norm("cls/predictions/transform/LayerNorm", head.layer_norm))
    out["cls/predictions/output_bias"] = head.output_bias
    if pretrainer.nsp_head is not None:
        out["cls/seq_relationship/output_weights"] = pretrainer.nsp_head.kernel
        out["cls/seq_relationship/output_bias"] = pretrainer.nsp_head.bias
    return out


def _dense(prefix, layer):
    return {f"{prefix}/kernel": layer.kernel, f"{prefix}/bias": layer.bias}


def _layer_norm(prefix, layer):
    return {f"{prefix}/gamma": layer.gamma, f"{prefix}/beta": layer.beta}


# Hugging Face BERT keys (with or without the `bert.` prefix of *For* models).
_HF_RULES = [
    (r"embeddings\.(word|position|token_type)_embeddings\.weight",
     r"bert/embeddings/\1_embeddings", False),
    (r"embeddings\.LayerNorm\.(?:weight|gamma)", "bert/embeddings/LayerNorm/gamma", False),
    (r"embeddings\.LayerNorm\.(?:bias|beta)", "bert/embeddings/LayerNorm/beta", False),
    (r"encoder\.layer\.(\d+)\.(attention\.self\.(?:query|key|value)|attention\.output\.dense"
     r"|intermediate\.dense|output\.dense)\.weight", r"bert/encoder/layer_\1/\2/kernel", True),
    (r"encoder\.layer\.(\d+)\.(attention\.self\.(?:query|key|value)|attention\.output\.dense"
     r"|intermediate\.dense|output\.dense)\.bias", r"bert/encoder/layer_\1/\2/bias", False),
    (r"encoder\.layer\.(\d+)\.(attention\.output|output)\.LayerNorm\.(?:weight|gamma)",
     r"bert/encoder/layer_\1/\2/LayerNorm/gamma", False),
    (r"encoder\.layer\.(\d+)\.(attention\.output|output)\.LayerNorm\.(?:bias|beta)",
     r"bert/encoder/layer_\1/\2/LayerNorm/beta", False),
    (r"pooler\.dense\.weight", "bert/pooler/dense/kernel", True),
    (r"pooler\.dense\.bias", "bert/pooler/dense/bias", False),
    (r"cls\.predictions\.transform\.dense\.weight", "cls/predictions/transform/dense/kernel", True),
    (r"cls\.predictions\.transform\.dense\.bias", "cls/predictions/transform/dense/bias", False),
    (r"cls\.predictions\.transform\.LayerNorm\.(?:weight|gamma)",
     "cls/predictions/transform/LayerNorm/gamma", False),
    (r"cls\.predictions\.transform\.LayerNorm\.(?:bias|beta)",
     "cls/predictions/transform/LayerNorm/beta", False),
    (r"cls\.predictions\.bias", "cls/predictions/output_bias", False),
    (r"cls\.seq_relationship\.weight", "cls/seq_relationship/output_weights", False),
    (r"cls\.seq_relationship\.bias", "cls/seq_relationship/output_bias", False),
]
_HF_RULES = [(re.compile(pattern), name, transpose) for pattern, name, transpose in _HF_RULES]


def google_name_of_hf_key(key):
    """`(google_name, transpose)` for a Hugging Face key, or None if it has none.

    PyTorch `Linear` weights are `[out, in]`; Keras and Google kernels are `[in, out]`.
    """
    bare = key[len("bert."):] if key.startswith("bert.") else key
    for pattern, name, transpose in _HF_RULES:
        if pattern.fullmatch(bare):
            return pattern.sub(name, bare).replace(".", "/"), transpose  # no dots in Google names
    return None


def to_model_layout(google_name, array):
    """A source array in Google's layout → the layout of our variable."""
    return np.transpose(array) if google_name in TRANSPOSED_IN_GOOGLE else array


def to_google_layout(google_name, array):
    """Our variable's array → Google's layout (the inverse of `to_model_layout`)."""
    return np.transpose(array) if google_name in TRANSPOSED_IN_GOOGLE else array
