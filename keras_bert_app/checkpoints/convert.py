"""`convert_checkpoint`: an existing BERT checkpoint → a pre-trained model directory."""

import os

from keras_bert_app import names
from keras_bert_app.checkpoints import importer
from keras_bert_app.config import BertConfig
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.text.text_config import TextConfig

SOURCE_FORMATS = ("hf", "tf1")


def convert_checkpoint(source_format, input_path, output_dir, do_lower_case=None):
    """Converts a Hugging Face directory or a Google TF1 release; returns the report.

    `hf`: `input_path` holds `config.json`, `model.safetensors` (or
    `pytorch_model.bin`, which needs torch), `vocab.txt` and usually
    `tokenizer_config.json` (its `do_lower_case`). `tf1`: `input_path` is a directory
    with `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*` (or the checkpoint
    prefix itself); Google's releases do not record their casing, so `do_lower_case`
    is required. The result is a model directory `kba.load_encoder` and every
    pipeline take.
    """
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"Unknown source_format {source_format!r}; expected one of "
                         f"{list(SOURCE_FORMATS)}.")
    input_path = os.fspath(input_path)
    if source_format == "hf":
        directory = input_path
        config = BertConfig.from_json_file(_required(directory, "config.json"))
        recorded = importer.hf_do_lower_case(directory)
        if recorded is not None and do_lower_case is not None and recorded != do_lower_case:
            raise ValueError(f"do_lower_case={do_lower_case} contradicts {directory}/"
                             f"tokenizer_config.json (do_lower_case={recorded}).")
        do_lower_case = recorded if do_lower_case is None else do_lower_case
        weights, source = importer.read_hf_weights(directory)
        google, unused, skipped = importer.hf_to_google(weights)
    else:
        directory = input_path if os.path.isdir(input_path) else os.path.dirname(input_path)
        checkpoint = (os.path.join(input_path, "bert_model.ckpt")
                      if os.path.isdir(input_path) else input_path)
        config = BertConfig.from_json_file(_required(directory, names.BERT_CONFIG_FILE))
        source = checkpoint
        google, skipped = importer.tf1_to_google(importer.read_tf1_weights(checkpoint))
        unused = []
    if do_lower_case is None:
        raise ValueError(f"The casing of {input_path} is not recorded; pass "
                         "do_lower_case (true for uncased models).")
    vocab_file = _required(directory, names.VOCAB_FILE)

    pretrainer = BertPretrainer(BertEncoder(config))
    report = importer.load_into(pretrainer, google, source, unused, skipped)
    save_model_dir(output_dir, pretrainer, vocab_file,
                   TextConfig.for_vocab(vocab_file, do_lower_case))
    return report


def _required(directory, name):
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory} lacks {name}.")
    return path
