"""Named regression cases for what fuzzing the text paths found (tests/fuzz/).

Each case is the smallest input found; a case marked xfail(strict=True) is a known
failure of the library, reported to the lead: it turns into a pass (and the strict
xfail into a failure, to be unmarked) when the library is fixed.
"""

import json
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from keras_bert_app import names
from tests.fuzz import strategies as fz
from tests.fuzz.targets import NER_LABELS, load_targets


@pytest.fixture(scope="module")
def ner():
    return load_targets(["ner"])["ner"]


@pytest.fixture(scope="module")
def preprocessing():
    return load_targets(["preprocessing"])["preprocessing"]


def served_words(ner, text):
    outputs = ner.call(ner.inputs([text.encode("utf-8")]))
    fz.check_ner(outputs, [text.encode("utf-8")], NER_LABELS)
    return [w.decode("utf-8") for w in outputs[names.WORDS][0][:outputs[names.NUM_WORDS][0]]]


@pytest.mark.parametrize("text,words", [
    ("to be or not", ["to", "be", "or", "not"]),
    ("Zoë flew, to 東京.", ["Zoë", "flew,", "to", "東京."]),
    ("x\ufffdy z", ["x\ufffdy", "z"]),  # a deleted character inside a word
    # Google deletes controls before splitting: U+001C joins; U+2028 separates.
    ("a\x1cb c\u2028d\u3000e", ["a\x1cb", "c", "d", "e"]),
    ("x \u200b\x00 y", ["x", "y"]),  # a token without a piece is no word
    ("ab\xff c", None),  # invalid UTF-8: bytes, checked below
])
def test_ner_words_are_whitespace_tokens(ner, text, words):
    if words is not None:
        assert served_words(ner, text) == words
        return
    data = text.encode("latin-1")  # the bytes as written
    outputs = ner.call(ner.inputs([data]))
    fz.check_ner(outputs, [data], NER_LABELS)
    assert list(outputs[names.WORDS][0]) == [b"ab\xff", b"c"]


@pytest.mark.parametrize("text,words", [
    ("a\u200b,", ["a\u200b,"]),  # zero-width space before punctuation
    ("(a\u0301)", ["(a\u0301)"]),  # a combining accent the uncased tokenizer strips
    ("中\u200b文", ["中\u200b文"]),  # between two CJK characters
])
def test_ner_a_deleted_character_inside_a_token_does_not_split_it(ner, text, words):
    assert served_words(ner, text) == words


@pytest.mark.parametrize("text,words", [
    ("0\u0300", ["0\u0300"]),
    ("\u200bword", ["\u200bword"]),
    ("word\x07 end\x00", ["word\x07", "end\x00"]),
])
def test_ner_characters_the_tokenizer_deletes_stay_in_their_word(ner, text, words):
    assert served_words(ner, text) == words


MEMORY_CHECK = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer op)

    def peak_mb():
        # VmHWM, not getrusage's ru_maxrss: that one keeps the high-water mark of
        # the forking parent across exec.
        with open("/proc/self/status") as f:
            line = next(l for l in f if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    serve(text=tf.constant(["warm up the graph"]))
    before = peak_mb()
    out = serve(text=tf.constant(["word " * int(sys.argv[2])]))
    print(json.dumps({"num_words": int(out["num_words"][0]),
                      "growth_mb": peak_mb() - before}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ner_memory_does_not_grow_with_words_times_text_length(ner, tmp_path):
    # A separate process: its peak resident memory is this request's.
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHECK, ner.path, "12000"],
                          capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["num_words"] == 12000
    # The windows, logits and outputs of 12,000 words take a few tens of MB.
    assert result["growth_mb"] < 300, result


def test_bert_pack_inputs_refuses_segments_of_different_batch_sizes(preprocessing):
    tokens = [preprocessing.model.tokenize(tf.constant(t))
              for t in ([b"to be", b"or not"], [b"that", b"is", b"the question"])]
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        preprocessing.model.bert_pack_inputs(tokens, seq_length=tf.constant(8))


def test_bert_pack_inputs_says_which_segments_differ(preprocessing):
    tokens = [preprocessing.model.tokenize(tf.constant(t))
              for t in ([b"to be", b"or not"], [b"that", b"is", b"the question"])]
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError),
                       match="same number of rows"):
        preprocessing.model.bert_pack_inputs(tokens, seq_length=tf.constant(8))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
