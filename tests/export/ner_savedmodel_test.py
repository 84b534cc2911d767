"""Text-in NER SavedModels: text in; words, tags and entities out, in a serving
process, equal to what `run_ner` predicts.

A tiny random tagger (7 IOB tags of 3 types) with small windows (16 positions,
stride 5: a sentence of 40 words spans a dozen windows, every piece in several) is
exported once for the module. A process with TensorFlow and TF Text's ops but no
Keras and none of our code (tf_only_check.py) loads it eagerly and as TF Serving
does. The expected tags come from the library path `run_ner --do_predict` takes
(`ner_windows` → the model at each length bucket → `word_predictions`); each
sentence is served as its words joined by single spaces.
"""

import os
import sys

import keras
import pytest

from keras_bert_app import names
from keras_bert_app.data.ner_features import ner_windows, word_predictions
from keras_bert_app.export import check_serving_ops, core_op_types, saved_model_op_types
from keras_bert_app.export import ner as ner_export
from keras_bert_app.export.ner import WARMUP_TEXTS, export_ner
from keras_bert_app.export.tf_serving_ops import TF_TEXT_2_12_1_OPS
from keras_bert_app.model_dir import save_model_dir, save_task_dir
from keras_bert_app.models import BertEncoder, BertPretrainer, BertTokenClassifier
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.tokenizer import BertTokenizer
from keras_bert_app.training.ner_inputs import window_logits
from keras_bert_app.training.ner_metrics import entities
from tests.export.tf_only_check import run_check
from tests.helpers import SHAKESPEARE_VOCAB, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = ("O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER")
SEQ_LENGTH, STRIDE = 16, 5
BAD_UTF8 = [b"caf\xc3 and more words \xe9t\xe9 here, th\xffe end.", b"\xff\xfe"]


def sentences():
    """Real speeches as word lists (CoNLL-like tokens: punctuation attached, as the
    tokenizer then splits it), some with multi-byte and zero-width characters, one
    joined into 600 words."""
    with open(os.path.join(REPO, "demo_data", "shakespeare.txt"), encoding="utf-8") as f:
        speeches = [s.split() for s in f.read().split("\n\n") if s.strip()][:60]
    result = [words[:40] for words in speeches[:50]]
    result[3] = ["Zoë", "flew", "from", "São", "Paulo", "to", "東京", "—", "ΣΟΦΟΣ"] + \
        result[3]
    result[5] = ["\u200b", "hidden", "x\u200b", "\u200b\u200b", "end."]  # no-piece words
    long = [w for words in speeches for w in words]
    result.append((long * 3)[:600])
    return result


def expected_tags(model, tokenizer, sents):
    windows = ner_windows(sents, tokenizer, SEQ_LENGTH, STRIDE)
    logits = window_logits(model, windows, 64, SEQ_LENGTH)
    predicted = word_predictions(windows, logits, sents, outside_id=0)
    return [[LABELS[i] for i in s] for s in predicted], len(windows)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ner_export"))
    tokenizer = BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)
    keras.utils.set_random_seed(3)
    model = BertTokenClassifier(BertEncoder(tiny_config(vocab_size=tokenizer.vocab_size)),
                                num_classes=len(LABELS))
    task = TaskConfig(task=names.NER_TASK, heads=(names.TAGGER_HEAD,), label_names=LABELS,
                      max_seq_length=SEQ_LENGTH, settings={"doc_stride": STRIDE})
    directory = os.path.join(root, "ner")
    save_task_dir(directory, model, SHAKESPEARE_VOCAB,
                  TextConfig.for_vocab(SHAKESPEARE_VOCAB, True), task)
    sents = sentences()
    expected, num_windows = expected_tags(model, tokenizer, sents)
    version = export_ner(os.path.join(root, "export"), model_dir=directory,
                         windows_per_call=8)
    texts = [" ".join(words) for words in sents]
    cases = [{"id": "sentences", "inputs": {names.SERVING_TEXT_INPUT: texts}},
             {"id": "one", "inputs": {names.SERVING_TEXT_INPUT: texts[3:4]}},
             {"id": "batch0", "inputs": {names.SERVING_TEXT_INPUT: []}},
             {"id": "bad_utf8", "inputs": {names.SERVING_TEXT_INPUT: BAD_UTF8}},
             {"id": "warmup", "inputs": {names.SERVING_TEXT_INPUT: list(WARMUP_TEXTS)}}]
    for case in cases:
        case.update(model="ner", call="serving_default")
    check = run_check({"models": {"ner": version}, "cases": cases, "warmup": ["ner"],
                       "describe": ["ner"]}, root)
    return {"sentences": sents, "texts": texts, "expected": expected, "check": check,
            "windows": num_windows, "version": version, "directory": directory,
            "model": model, "tokenizer": tokenizer, "task": task}


def outputs(exported, case_id):
    case = exported["check"]["cases"][case_id]
    return [case["eager"]["outputs"], case["session"]["outputs"]]


def token_starts(words):
    """Character where each word starts in the words joined by single spaces."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    return starts


def served_tag_of_each_word(out, row, words):
    """For each input word, the tag of the served word starting at its character
    (None when no served word does: a word the tokenizer deletes)."""
    count = int(out[ner_export.NUM_WORDS][row])
    starts = out[ner_export.WORD_START_CHAR][row][:count].tolist()
    tags = [t.decode() for t in out[ner_export.TAGS][row][:count]]
    by_start = dict(zip(starts, tags))
    return [by_start.get(s) for s in token_starts(words)]


def test_the_serving_process_has_no_keras_and_none_of_our_code(exported):
    assert exported["check"]["modules"] == []


def test_serving_default_takes_text_and_returns_words_tags_and_entities(exported):
    info = exported["check"]["describe"]["ner"]
    signature = info["signatures"]["serving_default"]
    assert signature["inputs"] == {names.SERVING_TEXT_INPUT: ["string", [None]]}
    assert signature["outputs"] == sorted(ner_export.OUTPUTS)
    assert [v.decode() for v in info["label_names"]] == list(LABELS)
    assert info["max_seq_length"].tolist() == SEQ_LENGTH


def test_served_tags_equal_run_ners_predictions(exported):
    assert exported["windows"] > 300  # a dozen windows a sentence, 150 for the long one
    for out in outputs(exported, "sentences"):
        compared = same = 0
        for row, (words, tags) in enumerate(zip(exported["sentences"],
                                                exported["expected"])):
            for served, expected in zip(served_tag_of_each_word(out, row, words), tags):
                if served is not None:
                    compared, same = compared + 1, same + (served == expected)
        assert compared > 1500
        # Served words are the input's tokens (punctuation inside a token does not
        # make words of its own): every tag of a row is run_ner's.
        for row, tags in enumerate(exported["expected"]):
            if not any("\u200b" in w for w in exported["sentences"][row]):
                count = int(out[ner_export.NUM_WORDS][row])
                assert [t.decode() for t in out[ner_export.TAGS][row][:count]] == tags
        assert same / compared >= 0.999, (same, compared)
    # The random tagger uses every tag: the comparison covers all of them.
    assert {t for tags in exported["expected"] for t in tags} == set(LABELS)


def test_words_are_the_texts_whitespace_tokens_with_character_offsets(exported):
    out = outputs(exported, "sentences")[0]
    for row, text in enumerate(exported["texts"]):
        count = int(out[ner_export.NUM_WORDS][row])
        words = [w.decode() for w in out[ner_export.WORDS][row][:count]]
        starts = out[ner_export.WORD_START_CHAR][row][:count]
        ends = out[ner_export.WORD_END_CHAR][row][:count]
        assert words == [text[s:e] for s, e in zip(starts, ends)]
        # The whitespace-separated tokens (as CoNLL lines hold them: "S.F." and
        # "#Padres" are one word each, not the tokenizer's punctuation-split words).
        # A zero-width space (deleted by the tokenizer) stays inside its word; a
        # token of nothing else holds no piece and is no word.
        assert words == [w for w in text.split() if w.replace("\u200b", "")]
        assert (out[ner_export.WORD_START_CHAR][row][count:] == -1).all()
        assert all(w == b"" for w in out[ner_export.TAGS][row][count:])


def test_entities_are_conllevals_chunks_of_the_served_tags(exported):
    out = outputs(exported, "sentences")[0]
    total = 0
    for row, text in enumerate(exported["texts"]):
        count = int(out[ner_export.NUM_WORDS][row])
        tags = [t.decode() for t in out[ner_export.TAGS][row][:count]]
        starts = out[ner_export.WORD_START_CHAR][row]
        ends = out[ner_export.WORD_END_CHAR][row]
        expected = [(kind, int(starts[a]), int(ends[b])) for kind, a, b in entities(tags)]
        n = int(out[ner_export.NUM_ENTITIES][row])
        served = list(zip([t.decode() for t in out[ner_export.ENTITY_TYPE][row][:n]],
                          out[ner_export.ENTITY_START_CHAR][row][:n].tolist(),
                          out[ner_export.ENTITY_END_CHAR][row][:n].tolist()))
        assert served == expected
        assert [t.decode() for t in out[ner_export.ENTITY_TEXT][row][:n]] == [
            text[s:e] for _, s, e in served]  # exact substrings of the text
        assert (out[ner_export.ENTITY_START_CHAR][row][n:] == -1).all()
        total += n
    assert total > 100


def test_a_single_text_gets_the_same_tags_as_in_a_batch(exported):
    batch = outputs(exported, "sentences")[0]
    for one in outputs(exported, "one"):
        count = int(one[ner_export.NUM_WORDS][0])
        assert one[ner_export.TAGS][0][:count].tolist() == \
            batch[ner_export.TAGS][3][:count].tolist()


def test_an_empty_batch_gets_empty_outputs(exported):
    for out in outputs(exported, "batch0"):
        assert {k: v.shape[0] for k, v in out.items()} == {k: 0 for k in out}


def test_undecodable_bytes_get_words_cut_from_the_text(exported):
    for out in outputs(exported, "bad_utf8"):
        decoded = BAD_UTF8[0].decode("utf-8", errors="replace")
        count = int(out[ner_export.NUM_WORDS][0])
        assert count > 5
        for word, s, e in zip(out[ner_export.WORDS][0][:count],
                              out[ner_export.WORD_START_CHAR][0][:count],
                              out[ner_export.WORD_END_CHAR][0][:count]):
            assert decoded[s:e] == word.decode("utf-8", errors="replace")
        assert int(out[ner_export.NUM_WORDS][1]) == 0  # nothing but undecodable bytes


def test_warmup_requests_replay(exported):
    records = exported["check"]["warmup"]["ner"]
    assert len(records) == len(WARMUP_TEXTS) + 1
    assert records[-1]["inputs"] == {names.SERVING_TEXT_INPUT: [len(WARMUP_TEXTS)]}
    direct = exported["check"]["cases"]["warmup"]["eager"]["outputs"]
    assert records[-1]["outputs"][ner_export.TAGS].tolist() == \
        direct[ner_export.TAGS].tolist()


def test_export_uses_only_core_ops_and_tf_text_2_12_1_ops(exported):
    allowed = core_op_types() | TF_TEXT_2_12_1_OPS
    assert check_serving_ops(exported["version"]) == ["FastWordpieceTokenizeWithOffsets"]
    used = set().union(*saved_model_op_types(exported["version"]).values())
    assert used <= allowed, sorted(used - allowed)


def test_export_refuses_a_directory_that_is_not_a_ner_model(tmp_path):
    pretrained = tmp_path / "pretrained"
    save_model_dir(pretrained, BertPretrainer(BertEncoder(tiny_config(vocab_size=927))),
                   SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    with pytest.raises(ValueError, match="task_config.json|NER"):
        export_ner(tmp_path / "export", model_dir=pretrained)
    assert not (tmp_path / "export").exists()


def test_export_refuses_tags_that_are_not_iob(tmp_path, exported):
    task = TaskConfig(task=names.NER_TASK, heads=(names.TAGGER_HEAD,),
                      label_names=("O", "S-LOC", "E-LOC", "B-PER", "I-PER", "X", "Y"),
                      max_seq_length=SEQ_LENGTH, settings={"doc_stride": STRIDE})
    with pytest.raises(ValueError, match=r"\['S-LOC', 'E-LOC', 'X', 'Y'\] are not IOB"):
        export_ner(tmp_path / "export", tagger=exported["model"],
                   tokenizer=exported["tokenizer"], task_config=task)
    assert not (tmp_path / "export").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
