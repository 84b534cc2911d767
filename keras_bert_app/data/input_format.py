"""What a pre-training input file is, decided from its bytes: TFRecords of
`tf.train.Example`s with Google's pre-training feature names, or UTF-8 text.

Never from a side file's presence: Google's and Model Garden's
`create_pretraining_data` write records without our `pretraining_metadata.json`, and
reading those as text would tokenise binary bytes and "pre-train" on noise.
"""

import struct

from keras_bert_app import names

TFRECORD = "tfrecord"
TEXT = "text"
# Google's `create_pretraining_data.py` feature names: a record lacking one is not a
# pre-training instance.
RECORD_FEATURES = (names.RECORD_INPUT_IDS, names.RECORD_INPUT_MASK,
                   names.RECORD_SEGMENT_IDS, names.MASKED_LM_POSITIONS,
                   names.MASKED_LM_IDS, names.MASKED_LM_WEIGHTS,
                   names.NEXT_SENTENCE_LABELS)
_TEXT_PROBE_BYTES = 1 << 16
NEWLINE = b"\n"
_MAX_FIRST_RECORD = 64 << 20


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data):
    """TFRecord's masked CRC-32C of `data` (bytes): the check of its framing."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _looks_like_tfrecords(path):
    """Whether `path` starts with TFRecord framing: an 8-byte length and its masked
    CRC-32C (4 bytes). Text cannot match by chance: a plausible length needs NUL
    bytes, and the CRC must match too."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        header = f.read(12)
    if len(header) < 12:
        return False
    length, length_crc = struct.unpack("<QI", header)
    return masked_crc32c(header[:8]) == length_crc and length <= _MAX_FIRST_RECORD


def first_record(path):
    """The first record of a file that `_looks_like_tfrecords`; None when that record
    is corrupt or truncated (TensorFlow's reader checks its data CRC)."""
    import tensorflow as tf

    try:
        for record in tf.data.TFRecordDataset(path).take(1):
            return record.numpy()
    except tf.errors.DataLossError:
        return None
    return None


def record_shapes(path, record):
    """`{feature: length}` of a pre-training `tf.train.Example`; an error naming
    `path` when it is not one (another kind of TFRecord)."""
    import tensorflow as tf

    example = tf.train.Example()
    try:
        example.ParseFromString(record)
    except Exception:  # protobuf's DecodeError; the message alone says enough
        raise ValueError(f"{path} holds TFRecords that are not tf.train.Examples.") from None
    features = example.features.feature
    missing = [n for n in RECORD_FEATURES if n not in features]
    if missing:
        raise ValueError(f"{path} holds TFRecords without the pre-training features "
                         f"{missing} (Google's create_pretraining_data names: "
                         f"{list(RECORD_FEATURES)}).")
    shapes = {}
    for name in RECORD_FEATURES:
        feature = features[name]
        kind = feature.WhichOneof("kind")
        shapes[name] = len(getattr(feature, kind).value) if kind else 0
    return shapes


def _is_text(path):
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        probe = f.read(_TEXT_PROBE_BYTES)
    if b"\x00" in probe:
        return False
    try:
        probe.decode("utf-8")
    except UnicodeDecodeError as error:
        # The probe may end inside a multi-byte character; anything else is not UTF-8.
        return error.start >= len(probe) - 3 and len(probe) == _TEXT_PROBE_BYTES
    return True


def check_utf8_text(path, chunk_bytes=1 << 20):
    """Raises `ValueError("{path}:{line}: not UTF-8 ...")` at the first byte of `path`
    that is not UTF-8 text (or is a NUL: UTF-16 or binary). The format probe reads
    only the first 64 KB, and the in-graph reader would turn a bad byte later on
    into U+FFFD and train on it; one streaming pass (~1 GB/s) reads it all."""
    import codecs

    import tensorflow as tf

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0  # at the start of `chunk`
    with tf.io.gfile.GFile(path, "rb") as f:
        while True:
            chunk = f.read(chunk_bytes)
            nul = chunk.find(b"\x00")
            data = chunk if nul < 0 else chunk[:nul]
            try:
                decoder.decode(data, final=not chunk or nul >= 0)
            except UnicodeDecodeError as error:
                # `error.object` starts with the (at most 3) bytes of a character the
                # previous chunk ended inside.
                at = offset - (len(error.object) - len(data)) + error.start
                line += chunk[:max(at - offset, 0)].count(NEWLINE)
                raise ValueError(
                    f"{path}:{line}: not "
                    f"UTF-8 text (byte 0x{error.object[error.start]:02x} at byte offset "
                    f"{at}); convert it, e.g. iconv -f latin1 -t utf-8.") from None
            if nul >= 0:
                line += data.count(NEWLINE)
                raise ValueError(f"{path}:{line}: not UTF-8 text (a "
                                 f"NUL byte at byte offset {offset + nul}: UTF-16 or "
                                 "binary?).")
            if not chunk:
                return
            line += chunk.count(NEWLINE)
            offset += len(chunk)


def detect_format(path):
    """`TFRECORD` or `TEXT` for one non-empty file, from its content; an error naming
    the file when it is neither pre-training TFRecords nor UTF-8 text. A file whose
    framing is TFRecord's but whose first record is corrupt counts as TFRecords (the
    reader then names it, or skips it with `skip_corrupt_records`)."""
    if _looks_like_tfrecords(path):
        record = first_record(path)
        if record is not None:
            record_shapes(path, record)  # raises for TFRecords of something else
        return TFRECORD
    if _is_text(path):
        check_utf8_text(path)
        return TEXT
    raise ValueError(f"{path} is neither TFRecords (its first bytes are not valid "
                     "TFRecord framing; compressed TFRecords are not read) nor UTF-8 "
                     "text.")


def detect_input_format(files):
    """The one format of all `files` (empty files, e.g. a record shard that got no
    instances, take no part); an error when they mix formats or are all empty."""
    import tensorflow as tf

    formats = {}
    for path in files:
        if tf.io.gfile.stat(path).length == 0:
            continue
        formats.setdefault(detect_format(path), []).append(path)
    if not formats:
        raise ValueError(f"The input files {files[0]}{', …' if len(files) > 1 else ''} "
                         "are all empty.")
    if len(formats) > 1:
        raise ValueError(f"The input mixes TFRecords ({formats[TFRECORD][0]}, …) and text "
                         f"({formats[TEXT][0]}, …); give one kind per run.")
    return next(iter(formats))


def check_record_lengths(files, max_seq_length, max_predictions_per_seq):
    """Checks the first record of every file against the lengths the run reads with:
    records without metadata carry their lengths only in their features (a later
    record of other lengths fails its batch; the runner reports it in one line)."""
    expected = {names.RECORD_INPUT_IDS: max_seq_length,
                names.RECORD_INPUT_MASK: max_seq_length,
                names.RECORD_SEGMENT_IDS: max_seq_length,
                names.MASKED_LM_POSITIONS: max_predictions_per_seq,
                names.MASKED_LM_IDS: max_predictions_per_seq,
                names.MASKED_LM_WEIGHTS: max_predictions_per_seq,
                names.NEXT_SENTENCE_LABELS: 1}
    import tensorflow as tf

    for path in files:
        if tf.io.gfile.stat(path).length == 0:
            continue
        record = first_record(path)
        if record is None:
            continue  # corrupt from its first record: the reader names or skips it
        shapes = record_shapes(path, record)
        wrong = {k: v for k, v in shapes.items() if v != expected[k]}
        if wrong:
            raise ValueError(
                f"{path}: its records have {wrong}, but the run reads them with "
                f"max_seq_length={max_seq_length}, "
                f"max_predictions_per_seq={max_predictions_per_seq}.")
