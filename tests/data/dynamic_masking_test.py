"""Dynamic masking and raw-text pre-training batches: Google's masking statistics,
whole words, fresh masks every epoch, and NSP/SOP/MLM-only pairs built in the graph."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.data import DynamicMasker, MaskingSettings, raw_text_pretraining_dataset
from keras_bert_app.text.vocab import load_vocab
from tests.helpers import SHAKESPEARE_VOCAB, write_shakespeare_corpus

VOCAB = load_vocab(SHAKESPEARE_VOCAB)
IDS = {t: i for i, t in enumerate(VOCAB)}
PAD, CLS, SEP, MASK = (IDS[t] for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]"))
SUFFIX = np.array([t.startswith("##") for t in VOCAB])


def packed_batch(batch=512, seq=64, seed=0):
    """Random real-looking sequences: [CLS] A [SEP] B [SEP] then padding."""
    rng = np.random.default_rng(seed)
    ids = np.full((batch, seq), PAD, np.int32)
    types = np.zeros((batch, seq), np.int32)
    lengths = rng.integers(12, seq + 1, batch)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(5, len(VOCAB), length)
        cut = length // 2
        ids[row, [0, cut, length - 1]] = [CLS, SEP, SEP]
        types[row, cut + 1:length] = 1
    mask = (ids != PAD).astype(np.int32)
    return {names.INPUT_WORD_IDS: tf.constant(ids), names.INPUT_MASK: tf.constant(mask),
            names.INPUT_TYPE_IDS: tf.constant(types)}


def mask(packed, seed=(1, 2), **settings):
    masker = DynamicMasker(MaskingSettings(**settings), VOCAB)
    features, labels = masker(packed, tf.constant(seed, tf.int64))
    return ({k: v.numpy() for k, v in features.items()},
            {k: v.numpy() for k, v in labels.items()})


def test_masking_follows_googles_budget_and_80_10_10():
    packed = packed_batch()
    original = packed[names.INPUT_WORD_IDS].numpy()
    features, labels = mask(packed, max_predictions_per_seq=20)
    positions, weights = features[names.MASKED_LM_POSITIONS], labels[names.MASKED_LM_WEIGHTS]
    lengths = packed[names.INPUT_MASK].numpy().sum(1)
    # Google: min(P, max(1, round(len(tokens) * 0.15))) predictions per sequence.
    expected = np.minimum(20, np.maximum(1, np.round(lengths * 0.15)))
    np.testing.assert_array_equal(weights.sum(1), expected)
    counts = np.zeros(3)
    for row in range(len(original)):
        chosen = positions[row][weights[row] > 0]
        assert list(chosen) == sorted(set(chosen))  # ascending, no repeats
        assert not np.isin(original[row, chosen], [CLS, SEP, PAD]).any()
        np.testing.assert_array_equal(labels[names.MASKED_LM_IDS][row][weights[row] > 0],
                                      original[row, chosen])
        new = features[names.INPUT_WORD_IDS][row, chosen]
        counts += [(new == MASK).sum(), ((new != MASK) & (new != original[row, chosen])).sum(),
                   (new == original[row, chosen]).sum()]
        untouched = np.setdiff1d(np.arange(original.shape[1]), chosen)
        np.testing.assert_array_equal(features[names.INPUT_WORD_IDS][row, untouched],
                                      original[row, untouched])
    share = counts / counts.sum()
    # A random token equals the original now and then (1/927): it counts as kept.
    np.testing.assert_allclose(share, [0.8, 0.1, 0.1], atol=0.02)
    assert counts.sum() > 2500  # enough for the tolerance: 3.5 standard errors


def test_whole_word_masking_takes_every_piece_of_a_word():
    packed = packed_batch(seed=3)
    ids = packed[names.INPUT_WORD_IDS].numpy()
    # Make many continuation pieces so that words span several positions.
    suffixes = np.flatnonzero(SUFFIX)
    rng = np.random.default_rng(4)
    real = (packed[names.INPUT_MASK].numpy() > 0) & ~np.isin(ids, [CLS, SEP])
    previous_real = np.pad(real[:, :-1], [[0, 0], [1, 0]])
    swap = real & previous_real & (rng.random(ids.shape) < 0.5)
    ids = np.where(swap, rng.choice(suffixes, ids.shape), ids)
    packed[names.INPUT_WORD_IDS] = tf.constant(ids)
    features, labels = mask(packed, do_whole_word_mask=True, max_predictions_per_seq=40)
    # A row can end with nothing chosen only when every word is longer than its budget
    # (Google skips words that do not fit, too).
    assert (labels[names.MASKED_LM_WEIGHTS].sum(1) > 0).mean() > 0.99
    for row in range(len(ids)):
        chosen = set(features[names.MASKED_LM_POSITIONS][row][
            labels[names.MASKED_LM_WEIGHTS][row] > 0])
        for position in range(1, ids.shape[1]):
            continues = SUFFIX[ids[row, position]] and real[row, position - 1] and \
                real[row, position]
            if continues:  # a ## piece and the piece before it: both or neither
                assert (position in chosen) == (position - 1 in chosen), (row, position)


def test_same_seed_same_masks_other_seed_other_masks():
    packed = packed_batch(batch=16)
    a, _ = mask(packed, seed=(5, 6))
    b, _ = mask(packed, seed=(5, 6))
    c, _ = mask(packed, seed=(5, 7))
    np.testing.assert_array_equal(a[names.MASKED_LM_POSITIONS], b[names.MASKED_LM_POSITIONS])
    assert (a[names.MASKED_LM_POSITIONS] != c[names.MASKED_LM_POSITIONS]).any()


def test_masker_requires_the_special_tokens():
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        DynamicMasker(MaskingSettings(), [t for t in VOCAB if t != "[MASK]"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_shakespeare_corpus(str(tmp_path_factory.mktemp("text") / "corpus.txt"),
                                    num_lines=1500, document_lines=60)


def take(dataset, count):
    out = []
    for features, labels in dataset.take(count):
        out.append(({k: v.numpy() for k, v in features.items()},
                    {k: v.numpy() for k, v in labels.items()}))
    return out


def unmasked(ids, positions, original_ids, weights):
    """`ids` with the original token back at every masked position."""
    ids = np.array(ids)
    for row in range(len(ids)):
        real = weights[row] > 0
        ids[row, positions[row][real]] = original_ids[row][real]
    return ids


def test_raw_text_nsp_batches(corpus):
    batches = take(raw_text_pretraining_dataset(corpus, SHAKESPEARE_VOCAB, 64,
                                                max_seq_length=64, seed=1,
                                                shuffle_buffer_size=256), 8)
    labels = np.concatenate([l[names.NEXT_SENTENCE_LABELS][:, 0] for _, l in batches])
    assert 0.4 < labels.mean() < 0.65  # half random B (one-sentence chunks add a few)
    for features, label in batches:
        assert features[names.INPUT_WORD_IDS].shape == (64, 64)
        assert label[names.MASKED_LM_IDS].shape == (64, 20)
        ids, types = features[names.INPUT_WORD_IDS], features[names.INPUT_TYPE_IDS]
        real = features[names.INPUT_MASK] > 0
        # The packing is checked on the tokens before masking: 10% of the masked
        # positions hold a random vocabulary entry, [SEP] and [CLS] included (Google).
        ids = unmasked(ids, features[names.MASKED_LM_POSITIONS], label[names.MASKED_LM_IDS],
                       label[names.MASKED_LM_WEIGHTS])
        for row in range(len(ids)):
            n = real[row].sum()
            seps = np.flatnonzero(ids[row, :n] == SEP)
            assert ids[row, 0] == CLS and ids[row, n - 1] == SEP and len(seps) == 2
            # type ids: 0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding
            np.testing.assert_array_equal(types[row, :seps[0] + 1], 0)
            np.testing.assert_array_equal(types[row, seps[0] + 1:n], 1)
            assert not types[row, n:].any() and not ids[row, n:].any()
    # Sequences are filled from whole documents: little padding (Google's algorithm).
    fill = np.mean([f[names.INPUT_MASK].mean() for f, _ in batches])
    assert fill > 0.8


def test_raw_text_sop_and_mlm_only(corpus):
    (sop_features, sop_labels), = take(raw_text_pretraining_dataset(
        corpus, SHAKESPEARE_VOCAB, 128, max_seq_length=64, sentence_prediction="sop",
        seed=2, shuffle_buffer_size=256), 1)
    assert 0.35 < sop_labels[names.NEXT_SENTENCE_LABELS].mean() < 0.65
    (features, labels), = take(raw_text_pretraining_dataset(
        corpus, SHAKESPEARE_VOCAB, 32, max_seq_length=64, sentence_prediction="none",
        seed=2, shuffle_buffer_size=256), 1)
    assert not features[names.INPUT_TYPE_IDS].any()
    assert not labels[names.NEXT_SENTENCE_LABELS].any()
    # One [SEP] per row in the unmasked text (a masked position may hold a random
    # replacement, which can be any id, [SEP] included, as in Google's code).
    ids = unmasked(features[names.INPUT_WORD_IDS], features[names.MASKED_LM_POSITIONS],
                   labels[names.MASKED_LM_IDS], labels[names.MASKED_LM_WEIGHTS])
    assert ((ids == SEP).sum(1) == 1).all()


def test_raw_text_every_epoch_gets_new_masks_and_the_seed_repeats_the_stream(corpus):
    def first_positions(dataset, count):
        return [f[names.MASKED_LM_POSITIONS] for f, _ in take(dataset, count)]

    small = write_shakespeare_corpus(corpus + ".small", num_lines=40, document_lines=40)
    # One document of 40 lines: a handful of sequences per epoch, so batches of
    # later epochs hold the same text; their masks must differ.
    stream = take(raw_text_pretraining_dataset(small, SHAKESPEARE_VOCAB, 2,
                                               max_seq_length=128,
                                               sentence_prediction="none",
                                               short_seq_prob=0.0, seed=3,
                                               shuffle_buffer_size=4), 12)
    by_text = {}
    for features, labels in stream:
        for row in range(2):
            original = features[names.INPUT_WORD_IDS][row].copy()
            chosen = features[names.MASKED_LM_POSITIONS][row][
                labels[names.MASKED_LM_WEIGHTS][row] > 0]
            original[chosen] = labels[names.MASKED_LM_IDS][row][
                labels[names.MASKED_LM_WEIGHTS][row] > 0]
            by_text.setdefault(original.tobytes(), []).append(tuple(chosen))
    # (The document's short last chunk, ~5 tokens with 1 prediction, is left out:
    # its masks collide by chance.)
    repeated = [masks for text, masks in by_text.items()
                if len(masks) > 1 and np.count_nonzero(np.frombuffer(text, np.int32)) > 40]
    assert repeated, "the small corpus should repeat within 12 batches"
    pairs = [(a, b) for masks in repeated for i, a in enumerate(masks) for b in masks[i + 1:]]
    # Two draws of 19 positions out of 126 coincide with negligible probability.
    assert sum(a != b for a, b in pairs) == len(pairs), (pairs, len(by_text))
    a = first_positions(raw_text_pretraining_dataset(corpus, SHAKESPEARE_VOCAB, 8, seed=9,
                                                     shuffle_buffer_size=64), 3)
    b = first_positions(raw_text_pretraining_dataset(corpus, SHAKESPEARE_VOCAB, 8, seed=9,
                                                     shuffle_buffer_size=64), 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_raw_text_skip_batches_resumes_the_same_stream(corpus):
    def stream(skip_batches, count):
        return take(raw_text_pretraining_dataset(corpus, SHAKESPEARE_VOCAB, 8,
                                                 max_seq_length=64, seed=4,
                                                 shuffle_buffer_size=64,
                                                 skip_batches=skip_batches), count)

    uninterrupted, resumed = stream(0, 6), stream(3, 3)
    # Batches 3..5 of the stream: the same text, pairs, labels and masks.
    for expected, got in zip(uninterrupted[3:], resumed):
        for part in (0, 1):
            assert sorted(expected[part]) == sorted(got[part])
            for key in expected[part]:
                np.testing.assert_array_equal(got[part][key], expected[part][key])
    # (and the skip did move the stream)
    assert not np.array_equal(resumed[0][0][names.INPUT_WORD_IDS],
                              uninterrupted[0][0][names.INPUT_WORD_IDS])


def test_raw_text_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="No files match"):
        raw_text_pretraining_dataset(str(tmp_path / "none*.txt"), SHAKESPEARE_VOCAB, 8)
    (tmp_path / "a.txt").write_text("hello\n")
    with pytest.raises(ValueError, match="sentence_prediction"):
        raw_text_pretraining_dataset(str(tmp_path / "a.txt"), SHAKESPEARE_VOCAB, 8,
                                     sentence_prediction="next")
    with pytest.raises(ValueError, match="skip_batches=-1"):
        raw_text_pretraining_dataset(str(tmp_path / "a.txt"), SHAKESPEARE_VOCAB, 8,
                                     skip_batches=-1)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
