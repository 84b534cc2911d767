"""`convert_checkpoint`: an existing BERT checkpoint → a pre-trained model directory."""


from keras_bert_app import names
from keras_bert_app.checkpoints import importer, source as sources
from keras_bert_app.config import BertConfig
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.text.text_config import TextConfig

SOURCE_FORMATS = sources.SOURCE_FORMATS


def convert_checkpoint(source_format, input_path, output_dir, do_lower_case=None):
    """Converts a Hugging Face directory or a Google TF1 release; returns the report.

    `hf`: `input_path` holds `config.json`, `model.safetensors` (or
    `pytorch_model.bin`, which needs torch), `vocab.txt` and usually
    `tokenizer_config.json` (its `do_lower_case`). `tf1`: `input_path` is a directory
    with `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*` (or the checkpoint
    prefix itself); Google's releases do not record their casing, so `do_lower_case`
    is required. The result is a model directory `kba.load_encoder` and every
    pipeline take.

    Every check comes before the first write: a missing encoder weight raises
    `importer.MissingEncoderWeightsError` (its message holds the import report) and
    leaves `output_dir` as it was (not created, nothing overwritten). Missing
    pre-training heads are not an error; the report lists them.
    """
    source = sources.locate(input_path, source_format)
    config_name = sources.HF_CONFIG_FILE if source.format == "hf" else names.BERT_CONFIG_FILE
    config = BertConfig.from_json_file(_required(source, source.config_file, config_name))
    sources.check_text(source, None, do_lower_case)
    do_lower_case = source.do_lower_case if do_lower_case is None else do_lower_case
    if do_lower_case is None:
        raise ValueError(f"The casing of {input_path} is not recorded; pass "
                         "do_lower_case (true for uncased models).")
    vocab_file = _required(source, source.vocab_file, names.VOCAB_FILE)
    text_config = TextConfig.for_vocab(vocab_file, do_lower_case)

    google, source_name, unused, skipped = sources.read_google_weights(source)
    pretrainer = BertPretrainer(BertEncoder(config))
    report = importer.load_into(pretrainer, google, source_name, unused, skipped)
    save_model_dir(output_dir, pretrainer, vocab_file, text_config)
    return report


def _required(source, path, name):
    if path is None:
        raise FileNotFoundError(f"{source.directory} lacks {name}.")
    return path
