"""Vocabulary learning: special tokens first, the size asked for, usable by the tokenizer."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.tokenizer import BertTokenizer
from keras_bert_app.text.vocab import load_vocab
from tests.helpers import ragged_to_lists, require_shared_data
from tests.text import reference_tokenizer as ref


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    data = require_shared_data()
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    with open(os.path.join(data, "corpus", "tinyshakespeare.txt"), encoding="utf-8") as f:
        shakespeare = f.read()[:150_000]
    with open(os.path.join(data, "corpus", "bert_sample_text.txt"), encoding="utf-8") as f:
        sample = f.read()
    path.write_text(sample + "\n" + shakespeare, encoding="utf-8")
    return path


@pytest.mark.parametrize("lower_case", [True, False])
def test_build_vocab_pipeline(tmp_path, corpus, lower_case):
    output = tmp_path / "vocab.txt"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.build_vocab", f"--input_file={corpus}",
         "--vocab_size=600", f"--do_lower_case={str(lower_case).lower()}",
         f"--output_file={output}"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    tokens = load_vocab(str(output))
    assert tokens[:5] == list(names.SPECIAL_TOKENS)
    assert 0.95 * 600 <= len(tokens) <= 600
    assert len(set(tokens)) == len(tokens)
    config = TextConfig.from_json_file(tmp_path / names.TEXT_CONFIG_FILE)
    assert config.do_lower_case is lower_case
    config.check_vocab(str(output))

    # The learned vocabulary covers the corpus: no [UNK], and the in-graph tokenizer
    # agrees with the reference on it, casing included.
    lines = [l for l in corpus.read_text(encoding="utf-8").splitlines() if l.strip()][:2000]
    tokenizer = BertTokenizer(str(output), lower_case=lower_case)
    reference = ref.FullTokenizer(str(output), do_lower_case=lower_case)
    ids = ragged_to_lists(tokenizer.tokenize(tf.constant(lines)))
    unk = tokenizer.special_ids[names.UNK_TOKEN]
    assert all(unk not in word for row in ids for word in row)
    for line, row in zip(lines, ids):
        assert [[tokens[i] for i in w] for w in row] == reference.tokenize_words(line)
    # Cased vocabularies keep capitals.
    assert any(t[0].isupper() for t in tokens[5:]) is (not lower_case)


def test_text_config_catches_another_vocabulary(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join(names.SPECIAL_TOKENS + ("hello",)) + "\n")
    second.write_text("\n".join(names.SPECIAL_TOKENS + ("world",)) + "\n")
    config = TextConfig.for_vocab(str(first), do_lower_case=True)
    config.check_vocab(str(first))
    with pytest.raises(ValueError, match="is not the vocabulary these text settings"):
        config.check_vocab(str(second))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
