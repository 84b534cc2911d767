"""`extract_features`: Google's `extract_features.py` contract over files (input lines
`text_a` or `text_a ||| text_b`; per-token JSON lines out), plus pooled sentence
embeddings as `.npy` or JSON lines."""

import contextlib
import json
import os
import uuid

import numpy as np

from keras_bert_app import names
from keras_bert_app.feature_extraction import (DEFAULT_LAYERS, EMBEDDING, POOLING_MODES,
                                               Example, FeatureExtractor, check_batch_size,
                                               check_pooling, parse_layers)

# Google's input lines: `text_a`, or `text_a ||| text_b`.
PAIR_SEPARATOR = "|||"
# Google writes each value as round(float(x), 6); so do the JSON embeddings.
DECIMALS = 6
NPY_EXTENSION = ".npy"
JSON_EXTENSIONS = (".jsonl", ".json")


def read_examples(path):
    """The lines of `path` as `Example`s, one per line, blank lines included (each
    line is one example, so outputs line up with the file, as Google's do).

    `text_a ||| text_b` is a pair (both sides stripped; Google's reader needs the
    spaces around the separator, this one does not). A file without any text, a line
    with several separators or an empty side, or invalid UTF-8 is a ValueError naming
    the file and line.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"input_file {path} does not exist.")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")  # as Google's readline: only "\n" ends a line
    if lines[-1] == b"":
        lines.pop()  # the file's final newline
    examples = []
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{number}: not valid UTF-8 ({e.reason} at byte "
                             f"{e.start}).") from None
        parts = line.split(PAIR_SEPARATOR)
        if len(parts) > 2:
            raise ValueError(f"{path}:{number}: {len(parts) - 1} {PAIR_SEPARATOR!r} "
                             f"separators; a line holds text_a or text_a "
                             f"{PAIR_SEPARATOR} text_b: {_excerpt(line)}")
        parts = [p.strip() for p in parts]
        if len(parts) == 2 and not all(parts):
            raise ValueError(f"{path}:{number}: empty text on one side of "
                             f"{PAIR_SEPARATOR!r}: {_excerpt(line)}")
        examples.append(Example(*parts))
    if not any(e.text_a for e in examples):
        raise ValueError(f"input_file {path} has no text: nothing to extract.")
    return examples


def _excerpt(text, limit=80):
    return repr(text if len(text) <= limit else text[:limit] + "…")


def extract_features(input_file, output_file, model_dir, layers=None, pooling=None,
                     normalize=False, max_seq_length=128, batch_size=32, progress=True):
    """`pipelines.extract_features`: the examples of `input_file` (see
    `read_examples`) through the encoder of `model_dir` (pre-trained or fine-tuned)
    into `output_file`.

    Without `pooling`: Google's JSON lines, one per input line, `{"linex_index": i,
    "features": [{"token": "[CLS]", "layers": [{"index": -1, "values": [...]}, ...]},
    ...]}`, each value rounded to 6 decimals (`layers`: default -1,-2,-3,-4). With
    `pooling` (`cls` or `mean`, optionally `normalize`d to unit L2 norm): the last
    layer pooled per example, float32 `[n, H]` as `.npy`, or JSON lines
    `{"linex_index": i, "embedding": [...]}` for `.jsonl`/`.json`.

    Everything is checked before the model loads; the output is written to a
    temporary file beside `output_file` and renamed into place once complete, so a
    failed run leaves no partial file (and an existing one as it was).

    Returns:
        A dict: `examples`, `pairs`, `shape` (of the embeddings), `output_file`,
        `format` and the settings.
    """
    from keras_bert_app.config import BertConfig
    from keras_bert_app.files import model_dir_files

    output_format = _output_format(output_file, pooled=pooling is not None)
    if pooling is not None:
        check_pooling(pooling)
        if layers is not None:
            raise ValueError(f"layers={layers!r}: layers are for per-token features; "
                             "pooled embeddings pool the last layer (give no layers "
                             "with pooling).")
    elif normalize:
        raise ValueError("normalize applies to pooled sentence embeddings: give pooling "
                         f"({' or '.join(POOLING_MODES)}) too.")
    check_batch_size(batch_size)
    examples = read_examples(input_file)
    (config_file,) = model_dir_files(model_dir, names.BERT_CONFIG_FILE)
    config = BertConfig.from_json_file(config_file)
    config.validate_sequence_length(max_seq_length)
    if pooling is None:
        try:
            layers = parse_layers(DEFAULT_LAYERS if layers is None else layers,
                                  config.num_hidden_layers)
        except ValueError as e:
            raise ValueError(f"{e} (model: {model_dir})") from None
    extractor = FeatureExtractor.from_model_dir(model_dir, max_seq_length=max_seq_length)
    with _written_atomically(output_file) as partial:
        if pooling is not None:
            vectors = extractor.embed(examples, pooling, normalize, batch_size, progress)
            _write_embeddings(partial, vectors, output_format)
        else:
            with open(partial, "w", encoding="utf-8") as f:
                features = extractor.token_features(examples, layers, batch_size, progress)
                for index, (tokens, values) in enumerate(features):
                    f.write(google_feature_line(index, tokens, values, layers) + "\n")
    return {"examples": len(examples),
            "pairs": sum(e.text_b is not None for e in examples),
            "shape": [len(examples), extractor.hidden_size] if pooling else None,
            "output_file": os.path.abspath(output_file), "format": output_format,
            "pooling": pooling, "normalize": bool(normalize),
            "layers": None if pooling else list(layers), "max_seq_length": max_seq_length}


def google_feature_line(index, tokens, values, layers):
    """One line of Google's `extract_features.py` output: its keys in its order
    (`linex_index` is Google's spelling) and its rounding. `values`: float
    `[layers, tokens, H]`."""
    features = []
    for t, token in enumerate(tokens):
        features.append({"token": token, "layers": [
            {"index": layer, "values": [round(v, DECIMALS) for v in values[j, t].tolist()]}
            for j, layer in enumerate(layers)]})
    return json.dumps({"linex_index": index, "features": features})


def _output_format(output_file, pooled):
    extension = os.path.splitext(os.fspath(output_file))[1].lower()
    allowed = ((NPY_EXTENSION,) if pooled else ()) + JSON_EXTENSIONS
    if extension not in allowed:
        what = "pooled embeddings" if pooled else \
            "per-token features (JSON lines; .npy holds pooled embeddings, with pooling)"
        raise ValueError(f"output_file {output_file}: the extension {extension!r} is not "
                         f"one of {list(allowed)} for {what}.")
    return "npy" if extension == NPY_EXTENSION else "jsonl"


def _write_embeddings(path, vectors, output_format):
    if output_format == "npy":
        with open(path, "wb") as f:  # a file object: np.save adds no extension
            np.save(f, vectors.astype(np.float32))
        return
    with open(path, "w", encoding="utf-8") as f:
        for index, vector in enumerate(vectors.tolist()):
            f.write(json.dumps({"linex_index": index,
                                EMBEDDING: [round(v, DECIMALS) for v in vector]}) + "\n")


@contextlib.contextmanager
def _written_atomically(path):
    """Yields a temporary path beside `path` (created with the umask's permissions,
    as `path` would be); renamed to `path` when the block succeeds, removed when it
    fails."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"output_file {path} is a directory.")
    directory, base = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{base}.partial-{uuid.uuid4().hex}")
    open(partial, "xb").close()
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
