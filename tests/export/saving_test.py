"""An export traces each of its functions once: `serving_layout.traced_for_saving`
traces them under the save context `tf.saved_model.save` looks them up in, so the
save finds them cached instead of tracing them again. The control pins TensorFlow's
behaviour this relies on (a function traced outside that context is traced again by
the save), so an upgrade that changes it fails here."""

import sys

import keras
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export import classifier as classifier_export
from keras_bert_app.export import encoder as encoder_export
from keras_bert_app.export.serving_layout import (SERVING_DEFAULT, save_export,
                                                  traced_for_saving)
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertClassifier, BertEncoder, BertPretrainer
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor
from keras_bert_app.text.text_config import TextConfig
from tests.helpers import SHAKESPEARE_VOCAB, tiny_config


class Scaler(tf.Module):
    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(3.0)
        self.traces = 0
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None], tf.float32, name="x")], autograph=False)

    def _serve(self, x):
        self.traces += 1  # Python runs only while tracing
        return {"y": x * self.scale}


@pytest.mark.parametrize("traced_for_the_save", [True, False])
def test_a_function_traced_for_saving_is_not_traced_again_by_the_save(tmp_path,
                                                                     traced_for_the_save):
    module = Scaler()
    if traced_for_the_save:
        with traced_for_saving():
            module.serve.get_concrete_function()
    else:
        module.serve.get_concrete_function()
    assert module.traces == 1
    save_export(module, str(tmp_path / "saved"))
    # The control: TensorFlow traces again what was traced outside its save context.
    assert module.traces == (1 if traced_for_the_save else 2)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    answer = loaded.signatures[SERVING_DEFAULT](x=tf.constant([1.0, 2.0]))
    assert answer["y"].numpy().tolist() == [3.0, 6.0]


def test_a_classifier_export_traces_its_serving_function_once(tmp_path, monkeypatch):
    traces = []
    answer = classifier_export._ClassifierExport._answer

    def counted(self, texts):
        traces.append(1)
        return answer(self, texts)

    monkeypatch.setattr(classifier_export._ClassifierExport, "_answer", counted)
    keras.utils.set_random_seed(0)
    classifier = BertClassifier(BertEncoder(tiny_config(vocab_size=927)), num_classes=2,
                                preprocessor=BertTextPreprocessor(SHAKESPEARE_VOCAB,
                                                                  sequence_length=16))
    task = TaskConfig.for_classifier(classifier, ["no", "yes"], 16, [names.TEXT_A])
    version = classifier_export.export_classifier(str(tmp_path / "export"),
                                                  classifier=classifier, task_config=task)
    assert len(traces) == 1
    served = tf.saved_model.load(version).signatures[SERVING_DEFAULT](
        **{names.TEXT_A: tf.constant(["good night sweet prince"])})
    expected = classifier(classifier.preprocessor(tf.constant(["good night sweet prince"])))
    assert served[names.PROBABILITIES].numpy() == pytest.approx(
        tf.nn.softmax(expected).numpy(), abs=1e-5)


def test_an_encoder_export_traces_each_of_its_five_functions_once(tmp_path, monkeypatch):
    """Its calls with and without training, the masked-LM head's two, and `serve`."""
    traced = []
    encoder_inputs = encoder_export._encoder_inputs
    serve = encoder_export._EncoderExport._serve

    def counted_inputs(inputs):  # the first line of each `__call__`
        traced.append("call")
        return encoder_inputs(inputs)

    def counted_serve(self, inputs):
        traced.append("serve")
        return serve(self, inputs)

    monkeypatch.setattr(encoder_export, "_encoder_inputs", counted_inputs)
    monkeypatch.setattr(encoder_export._EncoderExport, "_serve", counted_serve)
    keras.utils.set_random_seed(0)
    directory = tmp_path / "pretrained"
    save_model_dir(directory, BertPretrainer(BertEncoder(tiny_config(vocab_size=927))),
                   SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    encoder_export.export_encoder(str(tmp_path / "export"), str(directory), with_mlm=True)
    assert sorted(traced) == ["call"] * 4 + ["serve"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
