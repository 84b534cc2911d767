"""Exports a fine-tuned NER model as a text-in SavedModel for TF Serving.

`serving_default` takes strings `text` (`[batch]`; `batch` may be 0) and returns the
words, their tags and the entities; everything runs inside the graph: the text's
whitespace-separated tokens (what a CoNLL line holds: `S.F.` and `#Padres` stay one
word; our tokenizer still splits them into pieces as in training) with character
offsets, `run_ner`'s windows over a text of any
length (the encoder over a bounded number of windows per call), each word's tag at
its first piece in its max-context window, and entities by the rules the model was
evaluated by (`task_config.json` `settings.strict_iob2`: seqeval's strict IOB2 for a
`run_ner --strict_iob2` model, else conlleval's chunks, `run_ner`'s default).

| output              | dtype, shape                | meaning                           |
|---------------------|-----------------------------|-----------------------------------|
| `words`             | string `[batch, max_words]` | each word as it is in the text    |
|                     |                             | (exact bytes); `""` padding       |
| `num_words`         | int32 `[batch]`             | words of each text                |
| `tags`              | string `[batch, max_words]` | each word's tag; `""` padding     |
| `word_start_char`,  | int32 `[batch, max_words]`  | `[start, end)` character offsets  |
| `word_end_char`     |                             | into the text (code points, as    |
|                     |                             | Python indexes a str); -1 padding |
| `entity_text`       | string `[batch, max_ents]`  | `text[start:end]`; `""` padding   |
| `entity_type`       | string `[batch, max_ents]`  | the tags' type (`PER` of `B-PER`) |
| `entity_start_char`,| int32 `[batch, max_ents]`   | character offsets of the entity;  |
| `entity_end_char`   |                             | -1 padding                        |
| `num_entities`      | int32 `[batch]`             | entities of each text             |

For the words of a CoNLL sentence joined by single spaces, the tag of the served
word that starts where a CoNLL token starts is `run_ner`'s tag for that token (the
encoder sees the same pieces; the tests compare them).
"""


import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export.ner_graph import (entity_words, label_tables, ner_windows,
                                             piece_tags)
from keras_bert_app.export.serving_layout import (check_tensorflow_backend,
                                                  next_version_dir, save_export,
                                                  serving_variables, traced_for_saving,
                                                  write_warmup_requests)
from keras_bert_app.export.serving_ops import checked_export_dir
from keras_bert_app.export.squad_graph import char_offsets
from keras_bert_app.text.tokenizer import whitespace_token_offsets

# Outputs of the serving signature.
WORDS, NUM_WORDS, TAGS = names.WORDS, names.NUM_WORDS, names.TAGS
WORD_START_CHAR, WORD_END_CHAR = names.WORD_START_CHAR, names.WORD_END_CHAR
ENTITY_TEXT, ENTITY_TYPE = names.ENTITY_TEXT, names.ENTITY_TYPE
ENTITY_START_CHAR, ENTITY_END_CHAR = names.ENTITY_START_CHAR, names.ENTITY_END_CHAR
NUM_ENTITIES = names.NUM_ENTITIES
OUTPUTS = (WORDS, NUM_WORDS, TAGS, WORD_START_CHAR, WORD_END_CHAR, ENTITY_TEXT,
           ENTITY_TYPE, ENTITY_START_CHAR, ENTITY_END_CHAR, NUM_ENTITIES)
# Windows the encoder runs at once: bounds the memory a long text needs.
WINDOWS_PER_CALL = 64

# Warm-up texts: short ones, one with multi-byte characters, and a long one that
# spans several windows at any max_seq_length up to 512.
_NEWS = ("Angela Merkel met Emmanuel Macron in Paris on Tuesday to discuss the "
         "European Union budget, according to a statement from the German government.")
WARMUP_TEXTS = (
    "Apple is looking at buying a U.K. startup for $1 billion.",
    "Zoë flew from São Paulo to Zürich with Lufthansa — 東京 next week.",
    " ".join([_NEWS] * 16),
)


class _NerExport(tf.Module):
    """The SavedModel's root: `serve` (the `serving_default` signature) plus the
    settings as variables (`label_names`, `max_seq_length`, `doc_stride`)."""

    def __init__(self, tagger, tokenizer, task_config, windows_per_call):
        super().__init__()
        # Not attributes: the Keras model stays out of the SavedModel's object graph
        # (see serving_variables); the function closes over it.
        self._model = lambda inputs: tagger(inputs, training=False)
        self._tokenizer = tokenizer  # its tables and frozen variables are saved
        self._length = task_config.max_seq_length
        self._stride = task_config.settings["doc_stride"]
        # The entity rules the model was evaluated by (absent: conlleval's).
        self._strict = bool(task_config.settings.get("strict_iob2", False))
        self._windows_per_call = int(windows_per_call)
        prefix, type_id, types = label_tables(task_config.label_names)
        self._prefix = tf.constant(prefix, tf.int32)
        self._type_id = tf.constant(type_id, tf.int32)
        self._types = tf.constant(types or [""], tf.string)
        self.label_names = tf.Variable(list(task_config.label_names), trainable=False,
                                       name="label_names")
        self.max_seq_length = tf.Variable(self._length, trainable=False,
                                          name="max_seq_length")
        self.doc_stride = tf.Variable(self._stride, trainable=False, name="doc_stride")
        specs = {names.SERVING_TEXT_INPUT: tf.TensorSpec([None], tf.string,
                                                          name=names.SERVING_TEXT_INPUT)}
        self.serve = tf.function(self._tag, input_signature=[specs], autograph=False)
        with traced_for_saving():  # the save reuses this trace
            self._variables = serving_variables(self.serve.get_concrete_function())

    def _tag(self, inputs):
        text = inputs[names.SERVING_TEXT_INPUT]  # string [batch]
        batch = tf.shape(text, out_type=tf.int64)[0]
        ids, byte_starts, byte_limits = self._tokenizer.tokenize_with_offsets(text)
        pieces = ids.merge_dims(1, 2)  # [batch, (n)]
        windows = ner_windows(pieces, self._length, self._stride,
                              self._tokenizer.special_ids)
        tags_of_pieces = piece_tags(self._logits(windows), windows,
                                    tf.size(pieces.flat_values, tf.int64))
        # Served words are the text's whitespace tokens that hold a piece: what a CoNLL
        # line holds and run_ner tags, read at the token's first piece (the other
        # pieces, of "S.F." or "#Padres", were never trained to carry a tag).
        # Characters the tokenizer deletes stay inside their token.
        token_starts, token_limits = whitespace_token_offsets(text)  # [batch, (tokens)]
        # Byte positions in the concatenation of all texts: one sorted vector, so
        # one searchsorted places every piece of the batch in its token.
        byte_base = tf.cumsum(tf.cast(tf.strings.length(text), tf.int64), exclusive=True)
        piece_at = (tf.cast(byte_starts.flat_values, tf.int64)
                    + tf.gather(byte_base, pieces.value_rowids()))  # [P]
        token_at = token_starts.flat_values + tf.gather(byte_base,
                                                        token_starts.value_rowids())
        token_of_piece = tf.searchsorted(token_at, piece_at, side="right") - 1  # [P]
        first_piece = tf.where(tf.not_equal(token_of_piece,
                                            _previous(token_of_piece)))[:, 0]  # [K]
        token = tf.gather(token_of_piece, first_piece)  # [K] tokens holding a piece
        word_rows = tf.gather(token_starts.value_rowids(), token)  # [K]: each word's text
        tag_ids = tf.gather(tags_of_pieces, first_piece)  # [K]
        start_byte = tf.gather(token_starts.flat_values, token)
        end_byte = tf.gather(token_limits.flat_values, token)

        def by_row(values):  # [K] → [batch, (tokens)]
            return tf.RaggedTensor.from_value_rowids(values, word_rows, nrows=batch)

        start_char, end_char = char_offsets(text, by_row(start_byte), by_row(end_byte))
        words = _substrings(text, word_rows, start_byte, end_byte - start_byte, batch)
        first, last, kind = entity_words(tag_ids, word_rows, self._prefix, self._type_id,
                                         strict=self._strict)
        entity_rows = tf.gather(word_rows, first)
        entity_start = tf.gather(start_byte, first)
        entity_text = _substrings(text, entity_rows, entity_start,
                                  tf.gather(end_byte, last) - entity_start, batch)

        def padded(values, rows, fill):  # [k] → [batch, max per row]
            return tf.RaggedTensor.from_value_rowids(values, rows, nrows=batch).to_tensor(
                default_value=fill)

        def count(rows):  # [batch]
            return tf.cast(tf.RaggedTensor.from_value_rowids(
                rows, rows, nrows=batch).row_lengths(), tf.int32)

        int32 = lambda t: tf.cast(t, tf.int32)
        return {
            WORDS: padded(words, word_rows, ""),
            NUM_WORDS: count(word_rows),
            TAGS: padded(tf.gather(self.label_names.read_value(), tag_ids), word_rows, ""),
            WORD_START_CHAR: padded(int32(start_char.flat_values), word_rows, -1),
            WORD_END_CHAR: padded(int32(end_char.flat_values), word_rows, -1),
            ENTITY_TEXT: padded(entity_text, entity_rows, ""),
            ENTITY_TYPE: padded(tf.gather(self._types, kind), entity_rows, ""),
            ENTITY_START_CHAR: padded(int32(tf.gather(start_char.flat_values, first)),
                                      entity_rows, -1),
            ENTITY_END_CHAR: padded(int32(tf.gather(end_char.flat_values, last)),
                                    entity_rows, -1),
            NUM_ENTITIES: count(entity_rows),
        }

    def _logits(self, windows):
        """The tagger over all windows, `windows_per_call` at a time (one call at
        least, so an empty batch still runs the model on zero rows): float32
        `[T, width, tags]`."""
        inputs = {name: windows[name] for name in names.ENCODER_INPUTS}
        total = tf.shape(inputs[names.INPUT_WORD_IDS])[0]
        size = self._windows_per_call
        calls = tf.maximum((total + size - 1) // size, 1)

        def body(i, parts):
            part = {name: value[i * size:(i + 1) * size] for name, value in inputs.items()}
            return i + 1, parts.write(i, tf.cast(self._model(part), tf.float32))

        parts = tf.TensorArray(tf.float32, size=calls, infer_shape=False,
                               element_shape=tf.TensorShape([None, None, None]))
        # One call at a time: parallel iterations would hold several calls' memory.
        _, parts = tf.while_loop(lambda i, *_: i < calls, body, (tf.constant(0), parts),
                                 parallel_iterations=1)
        return parts.concat()


def _substrings(text, rows, start, length, batch):
    """string [K]: `text[rows[k]]` bytes `[start[k], start[k] + length[k])`, `rows`
    sorted. Cut with `substr` broadcasting each text over its own `[batch, max per
    row]` offsets: gathering the text once per piece would copy a long text once per
    word (a 1 MB text of 200,000 words: ~200 GB)."""
    starts = tf.RaggedTensor.from_value_rowids(start, rows, nrows=batch)
    lengths = tf.RaggedTensor.from_value_rowids(length, rows, nrows=batch)
    cut = tf.strings.substr(text[:, tf.newaxis], starts.to_tensor(),
                            lengths.to_tensor(), unit="BYTE")  # [batch, max per row]
    return tf.boolean_mask(cut, tf.sequence_mask(starts.row_lengths(), tf.shape(cut)[1]))


def _previous(values):
    """values[i-1] at i, -1 at 0 (a flat vector)."""
    return tf.concat([tf.fill([1], tf.constant(-1, values.dtype)), values[:-1]], 0)


def export_ner(export_base, model_dir=None, tagger=None, tokenizer=None,
               task_config=None, windows_per_call=WINDOWS_PER_CALL, warmup_texts=None):
    """Writes a text-in NER SavedModel as the next version under `export_base`.

    Give a fine-tuned NER directory (`model_dir`, as `run_ner` writes it), or a
    `BertTokenClassifier` with its `BertTokenizer` and `TaskConfig` (the tags, the
    sequence length and `settings.doc_stride`). The SavedModel lands in
    `export_base/<n>/` with TF Serving warm-up requests (one per text, then one with
    all), and is checked (`check_serving_ops`: loads in stock TF Serving 2.19 and
    later) before it moves into place. Needs the TensorFlow Keras backend.

    Returns:
        The version directory written.
    """
    check_tensorflow_backend("export_ner")
    tagger, tokenizer, task_config = _model_and_settings(model_dir, tagger, tokenizer,
                                                         task_config)
    if windows_per_call < 1:
        raise ValueError(f"windows_per_call={windows_per_call} must be positive.")
    texts = list(WARMUP_TEXTS if warmup_texts is None else warmup_texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"warmup_texts: expected strings, got {texts!r:.200}.")
    requests = [{names.SERVING_TEXT_INPUT: [t]} for t in texts]
    if len(texts) > 1:
        requests.append({names.SERVING_TEXT_INPUT: texts})
    module = _NerExport(tagger, tokenizer, task_config, windows_per_call)
    version_dir = next_version_dir(export_base)
    with checked_export_dir(version_dir) as scratch:
        save_export(module, scratch)
        write_warmup_requests(scratch, requests)
    return version_dir


def _model_and_settings(model_dir, tagger, tokenizer, task_config):
    from keras_bert_app.model_dir import load_task_model
    from keras_bert_app.text.tokenizer import BertTokenizer

    in_memory = (tagger, tokenizer, task_config)
    if (model_dir is None) == all(x is None for x in in_memory) or \
            (model_dir is None and any(x is None for x in in_memory)):
        raise ValueError("export_ner takes a model_dir, or a tagger together with its "
                         "tokenizer and task_config.")
    if model_dir is not None:
        tagger, task_config = load_task_model(model_dir, names.NER_TASK)
        tokenizer = BertTokenizer.from_model_dir(model_dir)
    if task_config.task != names.NER_TASK:
        raise ValueError(f"task_config {task_config} is not a NER task.")
    if tagger.encoder.config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"The tokenizer has {tokenizer.vocab_size} tokens but the "
                         f"encoder's vocabulary has {tagger.encoder.config.vocab_size}.")
    if tagger.output_shape[-1] != len(task_config.label_names):
        raise ValueError(f"The tagger has {tagger.output_shape[-1]} outputs but the task "
                         f"has {len(task_config.label_names)} tags.")
    return tagger, tokenizer, task_config
