"""The next-sentence label convention (DESIGN.md), checked on text whose every token
says where it comes from: label 0 = B is the actual next segment (SOP: in order),
label 1 = B is another document's text (SOP: A and B swapped). Both data paths:
records of `create_pretraining_data` and raw text."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_bert_app as kba
from keras_bert_app import names

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SEQ, PREDICTIONS = 16, 3  # pairs of at most 13 tokens: 1-token sentences never truncate


def word(document, position):
    """The one vocabulary word of `position` (0, 1, …) in `document`."""
    return f"d{document}p{position}"


def write_corpus(directory, files):
    """`files`: per file, per document, its sentence lengths. Token `k` of a document
    is `word(document, k)` (documents numbered across files). Returns the file paths,
    the vocabulary path and `{id: (document, position)}`."""
    os.makedirs(directory, exist_ok=True)
    paths, vocab, document = [], list(SPECIALS), 0
    for index, documents in enumerate(files):
        texts = []
        for lengths in documents:
            position, lines = 0, []
            for length in lengths:
                lines.append(" ".join(word(document, position + t) for t in range(length)))
                vocab.extend(word(document, position + t) for t in range(length))
                position += length
            texts.append("\n".join(lines))
            document += 1
        paths.append(os.path.join(directory, f"corpus-{index}.txt"))
        with open(paths[-1], "w") as f:
            f.write("\n\n".join(texts) + "\n")
    vocab_file = os.path.join(directory, "vocab.txt")
    with open(vocab_file, "w") as f:
        f.write("\n".join(vocab) + "\n")
    where = {i: (int(t[1:t.index("p")]), int(t[t.index("p") + 1:]))
             for i, t in enumerate(vocab) if t not in SPECIALS}
    return paths, vocab_file, where


def ones(*counts):
    """Documents of one-token sentences."""
    return [[1] * count for count in counts]


def pairs(batches, where):
    """`(A, B, label)` per sequence, A and B as lists of `(document, position)` with the
    masked tokens put back."""
    out = []
    for features, labels in batches:
        ids = np.array(features[names.INPUT_WORD_IDS])
        weights = np.array(labels[names.MASKED_LM_WEIGHTS]) > 0
        for row in range(len(ids)):
            chosen = np.array(features[names.MASKED_LM_POSITIONS])[row][weights[row]]
            ids[row, chosen] = np.array(labels[names.MASKED_LM_IDS])[row][weights[row]]
        types = np.array(features[names.INPUT_TYPE_IDS])
        real = np.array(features[names.INPUT_MASK]) > 0
        for row, label in enumerate(np.array(labels[names.NEXT_SENTENCE_LABELS])[:, 0]):
            text = [where.get(i) for i in ids[row]]
            a = [text[k] for k in np.flatnonzero(real[row] & (types[row] == 0))[1:-1]]
            b = [text[k] for k in np.flatnonzero(real[row] & (types[row] == 1))[:-1]]
            out.append((a, b, int(label)))
    return out


def contiguous(segment):
    """Consecutive tokens of one document."""
    return all(d == segment[0][0] for d, _ in segment) and all(
        q == p + 1 for (_, p), (_, q) in zip(segment, segment[1:]))


def follows(first, second):
    """`second` starts with the token that comes right after `first`'s last one."""
    return first[-1][0] == second[0][0] and second[0][1] == first[-1][1] + 1


def check_convention(instances, mode):
    """Asserts the label convention on every instance, and that both labels occur."""
    assert len(instances) > 100
    for a, b, label in instances:
        assert a and None not in a + b, "A and B hold only corpus tokens"
        assert contiguous(a) and (not b or contiguous(b)), (a, b)
        if not b:  # a one-token chunk of raw text: nothing to pair, nothing claimed
            assert label == 0 and len(a) == 1
        elif label == 0:
            assert follows(a, b), f"label 0 but B is not A's continuation: {a} | {b}"
        elif mode == "nsp":
            assert b[0][0] != a[0][0], f"label 1 but B is A's document: {a} | {b}"
        else:
            assert follows(b, a), f"label 1 but A and B are not swapped: {a} | {b}"
    share = np.mean([label for _, _, label in instances])
    assert 0.3 < share < 0.7, share  # both labels, about half each


def make_records(tmp_path, files, mode, dupe_factor=10):
    """Writes the records of `files`; returns their path and `{id: (document, position)}`."""
    paths, vocab_file, where = write_corpus(str(tmp_path), files)
    output = str(tmp_path / "records" / "train.tfrecord")
    kba.data.create_pretraining_data(kba.data.PretrainingDataConfig(
        input_files=tuple(paths), output_files=(output,), vocab_file=vocab_file,
        max_seq_length=SEQ, max_predictions_per_seq=PREDICTIONS, dupe_factor=dupe_factor,
        sentence_prediction=mode, random_seed=7), verbose=0)
    return output, where


def records(tmp_path, files, mode, dupe_factor=10):
    output, where = make_records(tmp_path, files, mode, dupe_factor)
    dataset = kba.data.pretraining_dataset(output, batch_size=64, max_seq_length=SEQ,
                                           max_predictions_per_seq=PREDICTIONS,
                                           is_training=False)
    return pairs(dataset, where)


def raw_text(tmp_path, files, mode, batches=30, **kwargs):
    paths, vocab_file, where = write_corpus(str(tmp_path), files)
    dataset = kba.data.raw_text_pretraining_dataset(
        os.path.join(str(tmp_path), "corpus-*.txt"), vocab_file, 16, max_seq_length=SEQ,
        max_predictions_per_seq=PREDICTIONS, sentence_prediction=mode, seed=3,
        shuffle_buffer_size=32, **kwargs)
    return pairs(dataset.take(batches), where)


# Two files of three documents: random B's can come from the same file or the other.
CORPUS = [ones(40, 55, 70), ones(45, 60, 50)]


@pytest.mark.parametrize("mode", ["nsp", "sop"])
def test_records_label_0_is_the_actual_next_segment(tmp_path, mode):
    check_convention(records(tmp_path, CORPUS, mode), mode)


@pytest.fixture(scope="module")
def raw_nsp(tmp_path_factory):
    return raw_text(tmp_path_factory.mktemp("raw_nsp"), CORPUS, "nsp")


def test_raw_text_nsp_label_0_is_the_actual_next_segment(raw_nsp):
    check_convention(raw_nsp, "nsp")


def test_raw_text_sop_label_0_is_the_actual_next_segment(tmp_path):
    check_convention(raw_text(tmp_path, CORPUS, "sop"), "sop")


def test_raw_text_random_b_comes_from_another_document_of_either_file(raw_nsp):
    # Batches hold several chunks of one document (about 5 chunks a document, 16 a
    # batch), so a B drawn from any other row would often be A's document: the check
    # of label 1 in test_raw_text_nsp_label_0_is_the_actual_next_segment means it.
    # Documents are told apart within a file and across files, also from the document
    # at the same place in the other file (documents 0-2 are file 0's, 3-5 file 1's).
    random = [(a[0][0], b[0][0]) for a, b, label in raw_nsp if label]
    assert any(a // 3 == b // 3 for a, b in random)
    assert any(abs(a - b) == 3 for a, b in random)


def test_raw_text_random_b_is_as_long_as_googles(raw_nsp):
    # Google's random B is filled to the chunk's target length less A's, running on
    # through its document. A B that stopped where its chunk of the batch does would
    # make random pairs shorter: a cue for the label (then 12-16% shorter here).
    length = {label: np.mean([len(a) + len(b) for a, b, l in raw_nsp if l == label])
              for label in (0, 1)}
    assert abs(length[1] - length[0]) < 0.07 * length[0], length


# One document: 10 sentences of 13 tokens (each a chunk of its own), then 50 of one.
ONE_DOCUMENT = [[[13] * 10 + [1] * 50]]


def test_one_document_corpus_never_labels_its_own_text_random(tmp_path):
    """Without another document, NSP pairs A with its actual continuation (label 0);
    a one-sentence chunk is split in two."""
    made = {"records": records(tmp_path / "records", ONE_DOCUMENT, "nsp", dupe_factor=5),
            "raw text": raw_text(tmp_path / "raw", ONE_DOCUMENT, "nsp", batches=10)}
    for path, instances in made.items():
        assert len(instances) > 50, path
        assert not any(label for _, _, label in instances), path
        assert all(follows(a, b) for a, b, _ in instances if b), path
        # The 13-token sentences were split in two, not dropped or left without B.
        assert any(b and a[0][1] // 13 == b[-1][1] // 13 < 10 for a, b, _ in instances), path


def test_records_are_canonical_bytes(tmp_path):
    """protobuf (upb) orders the entries of a map, such as an Example's features,
    differently in each process: records are written in canonical order, so that a
    seed writes the same bytes in every run (README)."""
    output, _ = make_records(tmp_path, CORPUS, "nsp", dupe_factor=1)
    for record in tf.data.TFRecordDataset(output).take(20):
        written = record.numpy()
        canonical = tf.train.Example.FromString(written).SerializeToString(
            deterministic=True)
        assert written == canonical


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
