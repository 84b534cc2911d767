"""create_pretraining_data: Google's format and statistics; the reader's checks;
pre-training on the records raises masked-LM accuracy."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.config import BertConfig
from keras_bert_app.data import (PretrainingDataConfig, create_pretraining_data,
                                 pretraining_dataset)
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.text.vocab import load_vocab
from tests.helpers import require_minilm, require_shared_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLS, SEP, MASK = 101, 102, 103


@pytest.fixture(scope="module")
def vocab_file():
    return os.path.join(require_minilm(), "vocab.txt")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """~4,000 lines of Shakespeare in documents of 200 lines.

    (Its speeches are often a line or two. Google's algorithm always draws a random B
    for a one-segment chunk, so on short documents NSP labels lean to random: 62% with
    speeches as documents, 57% with 30-line documents.)
    """
    with open(os.path.join(require_shared_data(), "corpus", "tinyshakespeare.txt"),
              encoding="utf-8") as f:
        lines = [l for l in f.read().splitlines() if l.strip()][:4000]
    documents = ["\n".join(lines[i:i + 200]) for i in range(0, len(lines), 200)]
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    return path


def make(tmp_path, corpus, vocab_file, name="data", **overrides):
    fields = dict(input_files=(str(corpus),),
                  output_files=(str(tmp_path / name / "train-0.tfrecord"),
                                str(tmp_path / name / "train-1.tfrecord")),
                  vocab_file=vocab_file, dupe_factor=2)
    fields.update(overrides)
    config = PretrainingDataConfig(**fields)
    create_pretraining_data(config, verbose=0)
    return config


def records(config):
    dataset = pretraining_dataset(os.path.join(os.path.dirname(config.output_files[0]),
                                               "*.tfrecord"),
                                  batch_size=256, max_seq_length=config.max_seq_length,
                                  max_predictions_per_seq=config.max_predictions_per_seq,
                                  is_training=False)
    features, labels = {}, {}
    for x, y in dataset:
        for k, v in x.items():
            features.setdefault(k, []).append(v.numpy())
        for k, v in y.items():
            labels.setdefault(k, []).append(v.numpy())
    return ({k: np.concatenate(v) for k, v in features.items()},
            {k: np.concatenate(v) for k, v in labels.items()})


@pytest.fixture(scope="module")
def nsp_data(tmp_path_factory, corpus, vocab_file):
    config = make(tmp_path_factory.mktemp("nsp"), corpus, vocab_file)
    return config, records(config)


def test_records_follow_googles_layout(nsp_data):
    config, (x, y) = nsp_data
    ids, mask, types = (x[names.INPUT_WORD_IDS], x[names.INPUT_MASK],
                        x[names.INPUT_TYPE_IDS])
    assert len(ids) > 500 and ids.shape[1] == 128
    lengths = mask.sum(1)
    for row, length in zip(range(len(ids)), lengths):
        assert (mask[row, :length] == 1).all() and (mask[row, length:] == 0).all()
        assert ids[row, 0] == CLS and ids[row, length - 1] == SEP
        assert (ids[row, length:] == 0).all()
        seps = np.flatnonzero(ids[row, :length] == SEP)
        # Masking never touches [CLS]/[SEP]; a random replacement may add a [SEP] id.
        first_sep = seps[0]
        assert (types[row, :first_sep + 1] == 0).all() and (types[row, first_sep + 1:length] == 1).all()
    positions, weights = x[names.MASKED_LM_POSITIONS], y[names.MASKED_LM_WEIGHTS]
    for row in range(len(ids)):
        real = positions[row][weights[row] > 0]
        assert list(real) == sorted(set(real)) and real.min() > 0
        assert real.max() < lengths[row] - 1
        expected = min(20, max(1, int(round(lengths[row] * 0.15))))
        assert len(real) == expected


def test_masking_and_next_sentence_statistics(nsp_data):
    _, (x, y) = nsp_data
    weights = y[names.MASKED_LM_WEIGHTS] > 0
    shown = np.take_along_axis(x[names.INPUT_WORD_IDS], x[names.MASKED_LM_POSITIONS], 1)
    labels = y[names.MASKED_LM_IDS]
    shown, labels = shown[weights], labels[weights]
    mask_share = (shown == MASK).mean()
    kept_share = (shown == labels).mean()
    random_share = 1 - mask_share - kept_share
    print(f"\n{len(shown)} predictions: [MASK] {mask_share:.3f}, unchanged "
          f"{kept_share:.3f}, random {random_share:.3f}")
    assert abs(mask_share - 0.8) < 0.02
    assert abs(kept_share - 0.1) < 0.015 and abs(random_share - 0.1) < 0.015
    selected = weights.sum() / x[names.INPUT_MASK].sum()
    assert 0.13 < selected < 0.16  # 15% of tokens, capped at 20 per sequence
    random_next = y[names.NEXT_SENTENCE_LABELS].mean()
    print(f"next_sentence_labels: {random_next:.3f} random")
    assert abs(random_next - 0.5) < 0.04


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, corpus, vocab_file, nsp_data):
    config, _ = nsp_data
    again = make(tmp_path, corpus, vocab_file)
    for a, b in zip(config.output_files, again.output_files):
        assert open(a, "rb").read() == open(b, "rb").read()
    other = make(tmp_path, corpus, vocab_file, name="other", random_seed=7)
    assert open(other.output_files[0], "rb").read() != open(config.output_files[0], "rb").read()


def test_parallel_workers_write_the_same_records(tmp_path, corpus, vocab_file, nsp_data):
    config, _ = nsp_data
    parallel = make(tmp_path, corpus, vocab_file, name="parallel", num_workers=3)
    for a, b in zip(config.output_files, parallel.output_files):
        assert open(a, "rb").read() == open(b, "rb").read()


def test_whole_word_masking_masks_every_piece_of_a_word(tmp_path, corpus, vocab_file):
    is_suffix = np.array([t.startswith("##") for t in load_vocab(vocab_file)])
    config = make(tmp_path, corpus, vocab_file, do_whole_word_mask=True, dupe_factor=1)
    x, y = records(config)
    checked = 0
    for row in range(len(x[names.INPUT_WORD_IDS])):
        real = y[names.MASKED_LM_WEIGHTS][row] > 0
        masked = set(x[names.MASKED_LM_POSITIONS][row][real])
        originals = dict(zip(x[names.MASKED_LM_POSITIONS][row][real],
                             y[names.MASKED_LM_IDS][row][real]))
        for position in masked:
            previous = x[names.INPUT_WORD_IDS][row][position - 1]
            if is_suffix[originals[position]] and previous not in (CLS, SEP):
                # A continuation is masked with its word (a segment cut by truncation
                # may begin with one; Google's code then starts a new word there).
                assert position - 1 in masked
                checked += 1
    assert checked > 50


def test_sentence_order_and_masked_lm_only_modes(tmp_path, corpus, vocab_file):
    sop = make(tmp_path, corpus, vocab_file, name="sop", sentence_prediction="sop",
               dupe_factor=1)
    _, y = records(sop)
    assert abs(y[names.NEXT_SENTENCE_LABELS].mean() - 0.5) < 0.06
    none = make(tmp_path, corpus, vocab_file, name="none", sentence_prediction="none",
                dupe_factor=1)
    x, y = records(none)
    assert (x[names.INPUT_TYPE_IDS] == 0).all()
    assert (y[names.NEXT_SENTENCE_LABELS] == 0).all()
    lengths = x[names.INPUT_MASK].sum(1)
    assert (x[names.INPUT_WORD_IDS][np.arange(len(lengths)), lengths - 1] == SEP).all()
    meta = json.load(open(tmp_path / "none" / names.PRETRAINING_METADATA_FILE))
    assert meta["sentence_prediction"] == "none"


def test_reader_checks_the_metadata(tmp_path, nsp_data):
    config, _ = nsp_data
    pattern = os.path.join(os.path.dirname(config.output_files[0]), "*.tfrecord")
    with pytest.raises(ValueError, match="made with max_seq_length=128, but 64"):
        pretraining_dataset(pattern, 8, max_seq_length=64, max_predictions_per_seq=20)
    with pytest.raises(ValueError, match="made with vocab_size=30522, but 1000"):
        pretraining_dataset(pattern, 8, 128, 20, vocab_size=1000)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "x.tfrecord").write_bytes(open(config.output_files[0], "rb").read())
    with pytest.raises(FileNotFoundError, match="pretraining_metadata.json is missing"):
        pretraining_dataset(str(lonely / "*.tfrecord"), 8, 128, 20)
    with pytest.raises(FileNotFoundError, match="No files match"):
        pretraining_dataset(str(tmp_path / "nothing*"), 8, 128, 20)


def test_pipeline_binary(tmp_path, vocab_file):
    sample = os.path.join(require_shared_data(), "corpus", "bert_sample_text.txt")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.create_pretraining_data", f"--input_file={sample}",
         f"--output_file={tmp_path / 'a.tfrecord'}", f"--vocab_file={vocab_file}",
         "--sentence_order_prediction", "--dupe_factor=2"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "instances from 3 documents" in proc.stdout
    meta = json.load(open(tmp_path / names.PRETRAINING_METADATA_FILE))
    assert meta["sentence_prediction"] == "sop" and meta["dupe_factor"] == 2


def test_pretraining_on_the_records_raises_masked_lm_accuracy(tmp_path, corpus):
    """The two-step recipe on a small scale: learn a vocabulary, create data, pre-train."""
    from keras_bert_app.text.vocab_learning import learn_vocab, write_vocab

    vocab_file = str(tmp_path / "vocab.txt")
    write_vocab(learn_vocab([str(corpus)], vocab_size=1000, lower_case=True), vocab_file)
    config = make(tmp_path, corpus, vocab_file, max_seq_length=64,
                  max_predictions_per_seq=10, dupe_factor=3)
    vocab_size = len(load_vocab(vocab_file))
    keras.utils.set_random_seed(0)
    bert = BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=128,
                      max_position_embeddings=64)
    pretrainer = BertPretrainer(BertEncoder(bert))
    pretrainer.compile(optimizer=keras.optimizers.Adam(2e-3))
    dataset = pretraining_dataset(
        os.path.join(os.path.dirname(config.output_files[0]), "*.tfrecord"), batch_size=64,
        max_seq_length=64, max_predictions_per_seq=10, vocab_size=vocab_size, seed=1)
    history = pretrainer.fit(dataset, epochs=5, steps_per_epoch=60, verbose=0).history
    accuracy = history["masked_lm_accuracy"]
    print(f"\nmasked_lm_accuracy per epoch: {[round(a, 3) for a in accuracy]}")
    assert accuracy[-1] > 2 * accuracy[0] and accuracy[-1] > 0.1
    assert history["masked_lm_loss"][-1] < history["masked_lm_loss"][0] - 0.5


def test_wikiextractor_files_are_read_as_articles_and_stray_text_is_reported(tmp_path,
                                                                           capsys):
    from keras_bert_app.data.pretraining_data import read_documents
    from keras_bert_app.text.tokenizer import BertTokenizer
    from tests.helpers import SHAKESPEARE_VOCAB

    path = tmp_path / "wiki_00"
    path.write_text('<doc id="1" url="u" title="Rome">\nRome\n\nThe king is here. '
                    'The queen is there.\n</doc>\nstray words\n<doc id="2" title="B">\n'
                    'B\nA lord came.\n</doc>\n', encoding="utf-8")
    tokenizer = BertTokenizer(SHAKESPEARE_VOCAB)
    documents = read_documents([str(path)], tokenizer)
    tokenize = lambda text: tokenizer.tokenize_pieces([text]).flat_values.numpy().tolist()
    assert documents == [[tokenize("The king is here."), tokenize("The queen is there.")],
                         [tokenize("A lord came.")]]
    assert ("dropped 1 line(s) of text outside <doc> … </doc>"
            in capsys.readouterr().err)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
