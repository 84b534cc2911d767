"""Fine-tunes BERT for multiple choice: each (context, choice) pair scored by the
encoder and one shared head, softmax over a question's choices; accuracy.

    python -m pipelines.run_multiple_choice --train_file=swag/train.csv \
        --eval_file=swag/val.csv --init_model_dir=models/minilm \
        --model_dir=runs/swag --do_train --do_eval

    python -m pipelines.run_multiple_choice --train_file=train.jsonl \
        --eval_file=dev.jsonl --predict_file=test.jsonl ... --do_predict

Input, decided from the content: SWAG's CSV layout (`sent1`, `sent2`, `ending0..3`,
`label`; other columns ignored) or JSON lines `{"context", "question" (optional),
"choices": [...], "label"}` with any number (>= 2) of choices per question. Each
choice is the pair `[CLS] context [SEP] question choice [SEP]` (SWAG: `sent1`, then
`sent2 + " " + ending`, as Hugging Face's run_swag). A batch may mix choice counts:
padded choices are masked out of the softmax. Under --model_dir: checkpoints/ (and
checkpoints/best/), logs/, multiple_choice_run.json, eval_results.json (accuracy),
predictions.tsv (the chosen index and each choice's probability), and the fine-tuned
model directory that `export_savedmodel --export_type=multiple_choice` takes. The same
command after a kill resumes.
"""

from absl import flags

from pipelines import training_flags
from pipelines.errors import run

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "Training questions (SWAG CSV or JSON lines).")
flags.DEFINE_string("eval_file", None, "Labelled evaluation questions.")
flags.DEFINE_string("predict_file", None, "Questions to predict (labels optional).")
training_flags.define_finetuning_flags(
    save_checkpoints_steps=None, example="question",
    length_help="Length of each (context, choice) pair, special tokens included.",
    checkpoint_help="Checkpoint (and evaluation) interval; default one epoch.")
flags.DEFINE_bool("do_eval", False, "Evaluate at each checkpoint, keep the most accurate, "
                  "write eval_results.json.")
flags.DEFINE_bool("do_predict", False, "Write predictions.tsv for --predict_file.")
flags.DEFINE_integer("eval_batch_size", 8, "Evaluation batch size (questions).")
flags.mark_flags_as_required(["model_dir"])


def main(argv):
    del argv
    training_flags.split_cpu()
    from keras_bert_app.training.multiple_choice import (MultipleChoiceRunConfig,
                                                         run_multiple_choice)

    config = MultipleChoiceRunConfig(
        **training_flags.finetuning_fields(), train_file=FLAGS.train_file,
        eval_file=FLAGS.eval_file, predict_file=FLAGS.predict_file,
        do_eval=FLAGS.do_eval, do_predict=FLAGS.do_predict,
        eval_batch_size=FLAGS.eval_batch_size)
    results = run_multiple_choice(config)
    if results:
        print("eval_results: " + ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(results.items())))


if __name__ == "__main__":
    run(main, flags_parser=training_flags.parse_flags)
