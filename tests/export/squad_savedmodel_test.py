"""Text-in SQuAD SavedModels: question and context in, the answer out, in a serving
process, equal to what `run_squad` writes to predictions.json.

Two tiny SQuAD directories (v1.1, and v2.0 with a null threshold that splits the
questions) are exported once for the module with small windows (32 positions, stride
6), so contexts of a few hundred words span dozens of windows and the max-context rule
decides. A process with TensorFlow and TF Text's ops but no Keras and none of our code
(tf_only_check.py) loads them eagerly and as TF Serving does, and answers. The
expected answers come from the library path `run_squad --do_predict` takes
(`squad_features` → the model → `squad_predictions`).
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.data.squad_data import SquadExample
from keras_bert_app.data.squad_features import squad_features
from keras_bert_app.export import check_serving_ops, core_op_types, saved_model_op_types
from keras_bert_app.export.squad import WARMUP_QUESTIONS, export_squad
from keras_bert_app.export.tf_serving_ops import TF_TEXT_2_12_1_OPS
from keras_bert_app.model_dir import save_model_dir, save_span_labeler_dir
from keras_bert_app.models import BertEncoder, BertPretrainer, BertSpanLabeler
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.tokenizer import BertTokenizer
from keras_bert_app.training.squad_predictions import squad_predictions
from tests.export.tf_only_check import run_check
from tests.helpers import SHAKESPEARE_VOCAB, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTINGS = dict(doc_stride=6, max_query_length=8, max_answer_length=5, n_best_size=6)
SEQ_LENGTH = 32
BAD_UTF8 = [(b"who \xff?", b"caf\xc3 " + b"and more words \xe9t\xe9 here, th\xffe end. " * 4),
            (b"x", b"\xff\xfe")]


def examples():
    """Real speeches as contexts (some prefixed with multi-byte characters, one
    joined into a 2,000-word context), questions from their words."""
    with open(os.path.join(REPO, "demo_data", "shakespeare.txt"), encoding="utf-8") as f:
        speeches = [s.strip() for s in f.read().split("\n\n") if s.strip()][:60]
    contexts = speeches[:40]
    prefixes = ["Ünïcödé ÇAFÉ 東京 emoji 😀 x\u0301y ", "Ελληνικά: ΣΟΦΟΣ σοφός, Straße — "]
    for i in range(0, len(contexts), 3):
        contexts[i] = prefixes[i % 2] + contexts[i]
    contexts[7] = " \t "  # no piece at all
    long = "😀 " + " ".join(speeches)
    while len(long.split()) < 2000:
        long += " " + long
    contexts.append(long)
    result = []
    for i, context in enumerate(contexts):
        words = context.split()
        # Long questions too: they are cut to max_query_length pieces.
        question = " ".join(words[i % 7: i % 7 + 3 + i % 11]) + "?" if words else "who?"
        result.append(SquadExample(qid=f"q{i}", question=question, context=context,
                                   answers=(), is_impossible=False, title="",
                                   has_gold=False))
    return result


def expected_predictions(model, tokenizer, exs, settings):
    """What run_squad --do_predict writes: (predictions, nbest, null_odds)."""
    features = squad_features(exs, tokenizer, SEQ_LENGTH, settings["doc_stride"],
                              settings["max_query_length"])
    logits = model.predict({k: np.stack([getattr(f, k) for f in features])
                            for k in names.ENCODER_INPUTS}, batch_size=256, verbose=0)
    return squad_predictions(
        exs, features, np.asarray(logits[names.START_LOGITS], np.float64),
        np.asarray(logits[names.END_LOGITS], np.float64), settings["n_best_size"],
        settings["max_answer_length"], settings["version_2_with_negative"],
        settings["null_score_diff_threshold"]), len(features)


def build_squad_dir(root, version, seed, tokenizer, exs):
    keras.utils.set_random_seed(seed)
    model = BertSpanLabeler(BertEncoder(tiny_config(vocab_size=tokenizer.vocab_size)))
    settings = dict(SETTINGS, version_2_with_negative=version == "v2",
                    null_score_diff_threshold=0.0)
    if version == "v2":
        # A threshold that answers about half of the questions, halfway between two
        # questions' odds: one on the threshold itself would turn on the last bit of
        # logits computed at another padded width.
        (_, _, odds), _ = expected_predictions(model, tokenizer, exs, settings)
        ordered = sorted(odds.values())
        middle = len(ordered) // 2
        settings["null_score_diff_threshold"] = (ordered[middle] + ordered[middle + 1]) / 2
    task = TaskConfig(task=names.SQUAD_TASK, heads=(names.SPAN_HEAD,),
                      max_seq_length=SEQ_LENGTH, settings=settings)
    directory = os.path.join(root, version)
    save_span_labeler_dir(directory, model, SHAKESPEARE_VOCAB,
                          TextConfig.for_vocab(SHAKESPEARE_VOCAB, True), task)
    return directory, model, settings


def export_with_pipeline(model_dir, export_base):
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.export_savedmodel", "--export_type=squad",
         f"--init_model_dir={model_dir}", f"--export_path={export_base}"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def request(exs):
    return {names.QUESTION: [e.question for e in exs],
            names.CONTEXT: [e.context for e in exs]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("squad_export"))
    tokenizer = BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)
    exs = examples()
    result = {"examples": exs, "versions": {}, "expected": {}, "settings": {}}
    for seed, version in enumerate(("v1", "v2")):
        directory, model, settings = build_squad_dir(root, version, seed, tokenizer, exs)
        result["expected"][version], result["windows"] = expected_predictions(
            model, tokenizer, exs, settings)
        result["settings"][version] = settings
        result["dirs"] = dict(result.get("dirs", {}), **{version: directory})
    base = os.path.join(root, "export")
    # v1.1 through the library, few windows per encoder call (the long context needs
    # dozens of calls); v2.0 through the pipeline.
    result["versions"]["v1"] = export_squad(os.path.join(base, "v1"),
                                            model_dir=result["dirs"]["v1"],
                                            windows_per_call=16)
    result["pipeline_stdout"] = export_with_pipeline(result["dirs"]["v2"],
                                                     os.path.join(base, "v2"))
    result["versions"]["v2"] = os.path.join(base, "v2", "1")
    cases = []
    for version in ("v1", "v2"):
        cases += [
            {"id": f"{version}/examples", "inputs": request(exs)},
            {"id": f"{version}/one", "inputs": request(exs[3:4])},
            {"id": f"{version}/batch0", "inputs": {names.QUESTION: [],
                                                   names.CONTEXT: []}},
            {"id": f"{version}/bad_utf8",
             "inputs": {names.QUESTION: [q for q, _ in BAD_UTF8],
                        names.CONTEXT: [c for _, c in BAD_UTF8]}},
            {"id": f"{version}/warmup",
             "inputs": {names.QUESTION: [q for q, _ in WARMUP_QUESTIONS],
                        names.CONTEXT: [c for _, c in WARMUP_QUESTIONS]}},
            {"id": f"{version}/mismatched",
             "inputs": {names.QUESTION: ["a", "b"], names.CONTEXT: ["a b c"]}},
        ]
    for case in cases:
        case.update(model=case["id"].split("/")[0], call="serving_default")
    result["cases"] = {c["id"]: c for c in cases}
    result["check"] = run_check({"models": result["versions"], "cases": cases,
                                 "warmup": ["v1", "v2"], "describe": ["v1", "v2"]}, root)
    return result


def answers(exported, case_id):
    """The eager and the TF-Serving-style (session) answers of a case."""
    case = exported["check"]["cases"][case_id]
    return case["eager"], case["session"]


def texts(values):
    return [v.decode("utf-8") for v in values]


def test_the_serving_process_has_no_keras_and_none_of_our_code(exported):
    assert exported["check"]["modules"] == []


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_serving_default_takes_question_and_context_strings(exported, version):
    info = exported["check"]["describe"][version]
    signature = info["signatures"]["serving_default"]
    assert signature["inputs"] == {names.QUESTION: ["string", [None]],
                                   names.CONTEXT: ["string", [None]]}
    expected = [names.ANSWER, names.END_CHAR, names.SCORE, names.START_CHAR]
    if version == "v2":
        expected = sorted(expected + [names.HAS_ANSWER, names.NULL_ODDS])
    assert signature["outputs"] == expected
    assert info["max_seq_length"].tolist() == SEQ_LENGTH


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_served_answers_equal_run_squads_predictions(exported, version):
    exs = exported["examples"]
    predictions, nbest, null_odds = exported["expected"][version]
    windows = exported["windows"]
    assert windows > 1000  # one window for some contexts, hundreds for the long one
    for answer in answers(exported, f"{version}/examples"):
        out = answer["outputs"]
        assert texts(out[names.ANSWER]) == [predictions[e.qid] for e in exs]
        for i, e in enumerate(exs):
            start, end = int(out[names.START_CHAR][i]), int(out[names.END_CHAR][i])
            if predictions[e.qid]:
                # Character offsets (not bytes) into the context, as nbest records.
                assert e.context[start:end] == predictions[e.qid]
                best = next(b for b in nbest[e.qid] if b["text"])
                assert (start, end) == (best["start_char"], best["end_char"])
                assert out[names.SCORE][i] == pytest.approx(
                    best["start_logit"] + best["end_logit"], abs=1e-4)
            else:
                assert (start, end) == (-1, -1)
        if version == "v2":
            odds = [null_odds[e.qid] for e in exs]
            np.testing.assert_allclose(out[names.NULL_ODDS], odds, atol=1e-4)
            assert out[names.HAS_ANSWER].tolist() == [bool(predictions[e.qid])
                                                      for e in exs]
            # "No answer" scores the null score: the best span's score plus the odds.
            below = 0
            for i, e in enumerate(exs):
                spans = [b for b in nbest[e.qid] if b["text"]]
                if not predictions[e.qid] and spans:
                    below += 1
                    span = spans[0]["start_logit"] + spans[0]["end_logit"]
                    assert out[names.SCORE][i] == pytest.approx(span + odds[i], abs=1e-4)
            assert below > 0  # questions with a span that the threshold turns down
    answered = [e for e in exs if predictions[e.qid]]
    # The examples exercise what they are for: answers after multi-byte characters
    # (character and byte offsets differ there), in later windows of the long
    # context, and (v2.0) both decisions of the null threshold.
    assert any(len(e.context.encode()) != len(e.context) for e in answered)
    assert predictions[exs[-1].qid]
    assert 0 < len(answered) < len(exs)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_single_question_gets_the_same_answer_as_in_a_batch(exported, version):
    predictions = exported["expected"][version][0]
    qid = exported["examples"][3].qid
    for answer in answers(exported, f"{version}/one"):
        assert texts(answer["outputs"][names.ANSWER]) == [predictions[qid]]


def test_an_empty_context_has_no_answer(exported):
    exs = exported["examples"]
    blank = [i for i, e in enumerate(exs) if not e.context.strip()]
    for version in ("v1", "v2"):
        out = answers(exported, f"{version}/examples")[0]["outputs"]
        for i in blank:
            assert out[names.ANSWER][i] == b"" and out[names.START_CHAR][i] == -1
            if version == "v1":
                assert out[names.SCORE][i] == -np.inf
            else:
                assert not out[names.HAS_ANSWER][i]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_an_empty_batch_gets_empty_answers(exported, version):
    for answer in answers(exported, f"{version}/batch0"):
        assert {k: list(v.shape) for k, v in answer["outputs"].items()} == {
            k: [0] for k in answer["outputs"]}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_undecodable_bytes_get_answers_cut_from_the_context(exported, version):
    for answer in answers(exported, f"{version}/bad_utf8"):
        out = answer["outputs"]
        for i, (_, context) in enumerate(BAD_UTF8):
            start, end = int(out[names.START_CHAR][i]), int(out[names.END_CHAR][i])
            if start < 0:
                assert out[names.ANSWER][i] == b"" and end == -1
                continue
            # Character offsets count a replacement character per undecodable byte.
            decoded = context.decode("utf-8", errors="replace")
            assert decoded[start:end] == out[names.ANSWER][i].decode(
                "utf-8", errors="replace")
        if version == "v1":  # (v2.0's threshold may turn it down)
            assert out[names.ANSWER][0] != b""  # the case checks an answer
        assert out[names.ANSWER][1] == b""  # nothing but undecodable bytes


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_questions_and_contexts_of_different_lengths_are_an_invalid_argument(
        exported, version):
    for answer in answers(exported, f"{version}/mismatched"):
        assert answer["error"] == "InvalidArgumentError", answer
        assert "question and context must have the same number of rows" in \
            answer["message"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_warmup_requests_replay(exported, version):
    records = exported["check"]["warmup"][version]
    assert len(records) == len(WARMUP_QUESTIONS) + 1
    assert records[-1]["inputs"] == {names.QUESTION: [2], names.CONTEXT: [2]}
    # The replayed batch answers as the same request sent directly.
    direct = exported["check"]["cases"][f"{version}/warmup"]["eager"]["outputs"]
    assert records[-1]["outputs"][names.ANSWER].tolist() == direct[names.ANSWER].tolist()
    assert len(WARMUP_QUESTIONS[1][1].split()) > SEQ_LENGTH  # a multi-window warm-up


def test_exports_use_only_core_ops_and_tf_text_2_12_1_ops(exported):
    allowed = core_op_types() | TF_TEXT_2_12_1_OPS
    for version_dir in exported["versions"].values():
        assert check_serving_ops(version_dir) == ["FastWordpieceTokenizeWithOffsets"]
        used = set().union(*saved_model_op_types(version_dir).values())
        assert used <= allowed, sorted(used - allowed)


def test_the_pipeline_says_how_to_serve(exported):
    stdout = exported["pipeline_stdout"]
    base = os.path.dirname(exported["versions"]["v2"])
    assert f"Wrote the squad SavedModel, version 1, to {base}/1" in stdout
    assert f"--model_name=v2 --model_base_path={base}" in stdout


def test_export_refuses_a_directory_that_is_not_a_squad_model(tmp_path):
    pretrained = tmp_path / "pretrained"
    save_model_dir(pretrained, BertPretrainer(BertEncoder(tiny_config(vocab_size=927))),
                   SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    with pytest.raises(ValueError, match="task_config.json|SQuAD"):
        export_squad(tmp_path / "export", model_dir=pretrained)
    assert not (tmp_path / "export").exists()


def test_export_refuses_a_vocabulary_of_another_size(tmp_path, exported):
    keras.utils.set_random_seed(0)
    model = BertSpanLabeler(BertEncoder(tiny_config()))  # 97 tokens, not 927
    task = TaskConfig(task=names.SQUAD_TASK, heads=(names.SPAN_HEAD,),
                      max_seq_length=SEQ_LENGTH, settings=exported["settings"]["v1"])
    with pytest.raises(ValueError, match="927 tokens but the encoder's vocabulary has 97"):
        export_squad(tmp_path / "export", span_labeler=model, task_config=task,
                     tokenizer=BertTokenizer(SHAKESPEARE_VOCAB))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
