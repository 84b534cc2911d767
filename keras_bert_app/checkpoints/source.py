"""Where a checkpoint's weights, config, vocabulary and casing are, and the checks that
the vocabulary and casing a model will use are the checkpoint's own.

A Hugging Face directory holds `config.json`, `model.safetensors` (or
`pytorch_model.bin`), usually `vocab.txt` and `tokenizer_config.json` (its
`do_lower_case`). A Google TF1 release directory holds `bert_config.json`, `vocab.txt`
and `bert_model.ckpt.*`; a TF1 checkpoint can also be named by its prefix
(`.../model.ckpt-1000000`), whose directory is searched for the vocabulary. Google's
files do not record the casing.
"""

import dataclasses
import os

from keras_bert_app import names
from keras_bert_app.checkpoints import importer
from keras_bert_app.text.vocab import load_vocab, vocab_fingerprint

SOURCE_FORMATS = ("hf", "tf1")
HF_CONFIG_FILE = "config.json"
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TF1_CHECKPOINT_PREFIX = "bert_model.ckpt"  # the name in Google's releases


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """The files of one checkpoint; absent optional files are None."""

    format: str  # "hf" or "tf1"
    directory: str
    weights: str  # hf: the directory; tf1: the checkpoint prefix (or its directory)
    config_file: str = None  # config.json (hf) or bert_config.json (tf1)
    vocab_file: str = None
    casing_file: str = None  # tokenizer_config.json, when it records do_lower_case
    do_lower_case: bool = None  # as recorded in casing_file


def locate(path, source_format=None):
    """The `CheckpointSource` at `path`; `source_format` None detects it.

    A directory with `config.json` or a Hugging Face weight file is `hf`; anything
    else is read as a TF1 checkpoint (a directory holding `bert_model.ckpt.*` or a
    `checkpoint` state file, or a checkpoint prefix).
    """
    path = os.fspath(path)
    if source_format is None:
        is_hf = os.path.isdir(path) and any(
            os.path.isfile(os.path.join(path, name))
            for name in (HF_CONFIG_FILE,) + HF_WEIGHT_FILES)
        source_format = "hf" if is_hf else "tf1"
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"Unknown source_format {source_format!r}; expected one of "
                         f"{list(SOURCE_FORMATS)}.")
    if source_format == "hf":
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path} is not a Hugging Face model directory.")
        directory, weights, config_name = path, path, HF_CONFIG_FILE
    else:
        if os.path.isdir(path):
            directory = path
            prefix = os.path.join(path, TF1_CHECKPOINT_PREFIX)
            # Without Google's file name, TF finds the newest checkpoint of the folder.
            weights = prefix if os.path.isfile(prefix + ".index") else path
        else:
            directory, weights = os.path.dirname(path) or ".", path
        config_name = names.BERT_CONFIG_FILE
    do_lower_case = importer.hf_do_lower_case(directory) if source_format == "hf" else None
    return CheckpointSource(
        format=source_format, directory=directory, weights=weights,
        config_file=_optional(directory, config_name),
        vocab_file=_optional(directory, names.VOCAB_FILE),
        casing_file=(os.path.join(directory, HF_TOKENIZER_CONFIG_FILE)
                     if do_lower_case is not None else None),
        do_lower_case=do_lower_case)


def read_google_weights(source):
    """`(weights by Google name, source name, unused keys, skipped keys)`."""
    if source.format == "hf":
        weights, name = importer.read_hf_weights(source.weights)
        google, unused, skipped = importer.hf_to_google(weights)
        return google, name, unused, skipped
    google, skipped = importer.tf1_to_google(importer.read_tf1_weights(source.weights))
    return google, source.weights, [], skipped


def check_text(source, vocab_file, do_lower_case):
    """Raises if `vocab_file` or `do_lower_case` contradict the checkpoint's own.

    The vocabulary is compared by content (token list), the casing where the
    checkpoint records it. Returns notes on what could not be checked.
    """
    notes = []
    if vocab_file is not None:
        vocab_file = os.fspath(vocab_file)
        if source.vocab_file is None:
            notes.append(f"vocabulary not checked: {source.directory} has no "
                         f"{names.VOCAB_FILE}")
        else:
            _check_same_vocab(vocab_file, source.vocab_file)
    if do_lower_case is not None:
        if source.do_lower_case is None:
            notes.append(f"casing not checked: {source.directory} does not record "
                         "do_lower_case")
        elif bool(do_lower_case) != source.do_lower_case:
            raise ValueError(f"do_lower_case={bool(do_lower_case)} contradicts "
                             f"{source.casing_file} (do_lower_case="
                             f"{source.do_lower_case}).")
    return notes


def _check_same_vocab(vocab_file, checkpoint_vocab_file):
    ours, theirs = load_vocab(vocab_file), load_vocab(checkpoint_vocab_file)
    if vocab_fingerprint(ours) == vocab_fingerprint(theirs):
        return
    if len(ours) != len(theirs):
        difference = f"{len(ours)} tokens vs {len(theirs)}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
        difference = f"line {i + 1}: {ours[i]!r} vs {theirs[i]!r}"
    raise ValueError(f"{vocab_file} is not the vocabulary of the checkpoint, "
                     f"{checkpoint_vocab_file} ({difference}): the ids would mean "
                     "other tokens.")


def _optional(directory, name):
    path = os.path.join(directory, name)
    return path if os.path.isfile(path) else None
