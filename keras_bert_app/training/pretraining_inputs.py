"""The input side of `run_pretraining`: which files, which format (decided from their
content), the datasets for training and evaluation, and input errors surfaced as one
line naming the file instead of a traceback from inside `fit`."""

import contextlib
import re

from keras_bert_app import names

# Raw text's lengths when the run does not give them (Google's defaults).
DEFAULT_MAX_SEQ_LENGTH = 128
DEFAULT_MAX_PREDICTIONS_PER_SEQ = 20


# tf.io.parse_example's message for a feature of the wrong length.
_PARSE_ERROR = re.compile(r"Key: (\w+), Index: \d+\.\s+Number of \w+ values != expected\."
                          r"\s+Values size: (\d+) but output shape: \[(\d+)\]")


def input_files(pattern):
    """The files a run reads for `pattern`, chosen once and passed on as a list:
    directories and `pretraining_metadata.json` (which a `dir/*` glob also matches)
    are not input."""
    import tensorflow as tf

    files = sorted(f for f in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(f))
    files = [f for f in files if not f.endswith(names.PRETRAINING_METADATA_FILE)]
    if not files:
        raise FileNotFoundError(f"input_file {pattern} matches no file.")
    return files


def resolve_format(pattern, input_format):
    """`"tfrecord"` or `"text"` for the files of `pattern`, from their content; an
    explicit `input_format` that contradicts the content is an error."""
    from keras_bert_app.data.input_format import detect_input_format

    files = input_files(pattern)
    found = detect_input_format(files)
    if input_format not in ("auto", found):
        raise ValueError(f"input_format={input_format!r}, but {files[0]} holds {found}.")
    return files, found


def make_dataset(config, pattern, batch_size, model_config, vocab_file, text_config,
                 is_training, skip_batches=0):
    """`(dataset, settings)` for the files of `pattern` (training or evaluation).

    TFRecords with `create_pretraining_data`'s metadata are checked against it and
    the model; records without metadata (Google's) need `max_seq_length` and
    `max_predictions_per_seq`, which are checked against every file's first record.
    Raw text is tokenised and masked in the graph with the run's settings.
    """
    from keras_bert_app.data import pretraining_dataset, read_metadata
    from keras_bert_app.data.raw_text_dataset import raw_text_pretraining_dataset

    files, input_format = resolve_format(pattern, config.input_format)
    if input_format == "tfrecord":
        _, metadata = read_metadata(files, required=False)
        if metadata is None:
            seq, predictions = _required_lengths(config, files[0])
            settings = {"max_seq_length": seq, "max_predictions_per_seq": predictions,
                        "masked_lm_prob": None, "do_whole_word_mask": None,
                        # Google's records always carry next_sentence_labels (NSP, or
                        # SOP for ALBERT's data: the same 2-way head reads both);
                        # sentence_prediction="none" trains the masked LM alone.
                        "sentence_prediction": "none" if config.sentence_prediction ==
                                               "none" else "nsp",
                        "metadata": False}
            print(f"Reading {len(files)} TFRecord file(s) without "
                  f"{names.PRETRAINING_METADATA_FILE} (Google's format) with "
                  f"max_seq_length={seq}, max_predictions_per_seq={predictions}; their "
                  "vocabulary and casing cannot be checked, only that word ids fit "
                  f"the model's vocab_size={model_config.vocab_size}.")
        else:
            if metadata["do_lower_case"] != text_config.do_lower_case:
                raise ValueError(f"The records of {pattern} were made with do_lower_case="
                                 f"{metadata['do_lower_case']}, the model's text settings "
                                 f"say {text_config.do_lower_case}.")
            for key in ("max_seq_length", "max_predictions_per_seq"):
                given = getattr(config, key)
                if given is not None and given != metadata[key]:
                    raise ValueError(f"{key}={given}, but the records of {pattern} were "
                                     f"made with {key}={metadata[key]}.")
            settings = {k: metadata[k] for k in (
                "max_seq_length", "max_predictions_per_seq", "masked_lm_prob",
                "do_whole_word_mask", "sentence_prediction")}
            settings["metadata"] = True
        dataset = pretraining_dataset(
            files, batch_size, settings["max_seq_length"],
            settings["max_predictions_per_seq"], vocab_size=model_config.vocab_size,
            vocab_sha256=text_config.vocab_sha256 if metadata else None,
            is_training=is_training, seed=config.seed, require_metadata=False,
            skip_corrupt_records=config.skip_corrupt_records, skip_batches=skip_batches)
        settings["input"] = "tfrecord"
        return dataset, settings
    from keras_bert_app.text.vocab import load_vocab

    vocab_size = len(load_vocab(vocab_file))
    if vocab_size != model_config.vocab_size:
        raise ValueError(f"{vocab_file} has {vocab_size} tokens; the model's "
                         f"vocab_size is {model_config.vocab_size}.")
    seq = config.max_seq_length or DEFAULT_MAX_SEQ_LENGTH
    predictions = config.max_predictions_per_seq or DEFAULT_MAX_PREDICTIONS_PER_SEQ
    dataset = raw_text_pretraining_dataset(
        files, vocab_file, batch_size, do_lower_case=text_config.do_lower_case,
        max_seq_length=seq, max_predictions_per_seq=predictions,
        masked_lm_prob=config.masked_lm_prob, short_seq_prob=config.short_seq_prob,
        sentence_prediction=config.sentence_prediction,
        do_whole_word_mask=config.do_whole_word_mask, is_training=is_training,
        seed=config.seed, skip_batches=skip_batches)
    settings = {"input": "text", "max_seq_length": seq,
                "max_predictions_per_seq": predictions,
                "masked_lm_prob": config.masked_lm_prob,
                "do_whole_word_mask": config.do_whole_word_mask,
                "sentence_prediction": config.sentence_prediction}
    return dataset, settings


def _required_lengths(config, example_file):
    missing = [k for k in ("max_seq_length", "max_predictions_per_seq")
               if getattr(config, k) is None]
    if missing:
        raise ValueError(
            f"{example_file} is a TFRecord file without {names.PRETRAINING_METADATA_FILE} "
            f"(as Google's create_pretraining_data writes): give {' and '.join(missing)} "
            "(--max_seq_length, --max_predictions_per_seq, as for Google's "
            "run_pretraining).")
    return config.max_seq_length, config.max_predictions_per_seq


def shard_for_workers(dataset, distribution):
    """Each worker reads every file and keeps its share of the global batches (DATA
    sharding): correct for any file count, and disjoint because every worker's
    stream is the same (one shared seed)."""
    if distribution.num_workers <= 1:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


@contextlib.contextmanager
def input_errors_named(pattern):
    """Turns the input pipeline's errors inside `fit`/`evaluate` into one-line
    `ValueError`s naming the file: a corrupt TFRecord (`DataLossError` names no file,
    so the files are scanned to find it) and word ids beyond the vocabulary."""
    import tensorflow as tf

    from keras_bert_app.data.pretraining_dataset import IDS_BEYOND_VOCAB

    try:
        yield
    except tf.errors.DataLossError as error:
        from keras_bert_app.data.pretraining_dataset import describe_corrupt_record

        found = describe_corrupt_record(input_files(pattern))
        raise ValueError(found or f"{pattern}: corrupt input ({error.message.strip()})"
                         ) from None
    except tf.errors.InvalidArgumentError as error:
        if IDS_BEYOND_VOCAB in error.message:
            from keras_bert_app.data.pretraining_dataset import describe_ids_beyond_vocab

            # The in-graph check names the files, not the record: find it (a scan
            # that runs only after the error).
            found = re.search(r"records of .*?" + re.escape(IDS_BEYOND_VOCAB),
                              error.message)
            size = re.search(r"vocab_size (\d+)", error.message)
            record = size and describe_ids_beyond_vocab(input_files(pattern),
                                                         int(size.group(1)))
            raise ValueError(record or (found.group(0) if found else error.message)
                             ) from None
        found = _PARSE_ERROR.search(error.message)
        if found:  # a record whose lengths differ from the first records'
            key, size, expected = found.groups()
            raise ValueError(f"{pattern}: a record's {key} has {size} values, the run "
                             f"reads {expected} (max_seq_length / "
                             "max_predictions_per_seq); the records mix lengths.") from None
        raise
