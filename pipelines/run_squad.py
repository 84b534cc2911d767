"""Fine-tunes BERT for SQuAD v1.1 / v2.0 question answering (Google's algorithm and flags).

    python -m pipelines.run_squad --train_file=train-v1.1.json \
        --predict_file=dev-v1.1.json --init_model_dir=models/minilm \
        --model_dir=runs/squad --do_train --do_predict

    python -m pipelines.run_squad --version_2_with_negative \
        --train_file=train-v2.0.json --predict_file=dev-v2.0.json ...

Input: SQuAD's JSON (v1.1 or v2.0 layout) or Hugging Face's flat records (a JSON list,
`{"data": [...]}` or JSON lines), decided from the content. Windows of
`[CLS] question [SEP] context [SEP]` as Google makes them (--doc_stride is the step
between window starts). Under --model_dir: checkpoints/, logs/, squad_run.json, the
fine-tuned model directory, and with --do_predict predictions.json,
nbest_predictions.json, null_odds.json (v2.0) and, when the predict file has answers,
eval_results.json with the official EM/F1. The same command after a kill resumes.
"""

from absl import flags

from pipelines import training_flags
from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "SQuAD JSON (or flat records) to train on.")
flags.DEFINE_string("predict_file", None, "SQuAD JSON (or flat records) to answer; scored "
                    "when it has answers.")
flags.DEFINE_bool("version_2_with_negative", False, "SQuAD v2.0: some questions have no "
                  "answer in their context.")
training_flags.define_finetuning_flags(
    max_seq_length=384, length_help="Window length in pieces, special tokens included.",
    example="question")
flags.DEFINE_bool("do_predict", False, "Answer --predict_file's questions.")
flags.DEFINE_integer("doc_stride", 128, "Pieces between the starts of a context's windows.")
flags.DEFINE_integer("max_query_length", 64, "Question pieces kept (the rest cut).")
flags.DEFINE_integer("n_best_size", 20, "Candidates kept per question "
                     "(nbest_predictions.json).")
flags.DEFINE_integer("max_answer_length", 30, "Longest answer, in pieces.")
flags.DEFINE_float("null_score_diff_threshold", 0.0, "v2.0: answer nothing when the "
                   "null score exceeds the best span's by more than this.")
flags.mark_flags_as_required(["model_dir"])


def main(argv):
    del argv
    training_flags.split_cpu()
    from keras_bert_app.training.squad import SquadRunConfig, run_squad

    config = SquadRunConfig(
        **training_flags.finetuning_fields(), train_file=FLAGS.train_file,
        predict_file=FLAGS.predict_file,
        version_2_with_negative=FLAGS.version_2_with_negative, do_predict=FLAGS.do_predict,
        doc_stride=FLAGS.doc_stride, max_query_length=FLAGS.max_query_length,
        n_best_size=FLAGS.n_best_size, max_answer_length=FLAGS.max_answer_length,
        null_score_diff_threshold=FLAGS.null_score_diff_threshold)
    run_squad(config)


if __name__ == "__main__":
    run(main, flags_parser=training_flags.parse_flags)
