"""The demo's closing summary: what was written where, the metrics, the answers of
the served model, and the commands to look further."""

import os
import shlex
import sys


def _fraction(value):
    return f"{100 * value:.1f}%"


def summary(config, state):
    done = state["done"]
    out = config.output_dir
    vocab, data = done["vocabulary"], done["pretraining_data"]
    pre, tuned = done["pretraining"], done["fine_tuning"]
    version_dir = config.path(done["export"]["version_dir"])
    export_base = os.path.dirname(version_dir)
    python = sys.executable
    lines = [
        "━━ Summary " + "━" * 60,
        f"Everything is under {out} (seconds per step in demo_state.json; this run "
        f"took {state['total_seconds']:.0f} s, reused steps excluded).",
        "",
        f"  vocab/vocab.txt            {vocab['tokens']} WordPiece tokens learned from "
        f"{vocab['train_documents']} Shakespeare speeches",
        f"  pretraining_data/          {data['train_instances']} training and "
        f"{data['heldout_instances']} held-out instances (TFRecords + metadata)",
        f"  pretrained_bert/           bert_tiny after {pre['steps']} steps: held-out "
        f"masked-LM accuracy {_fraction(pre['masked_lm_accuracy'])}"
        + (f", next-sentence accuracy {_fraction(pre['next_sentence_accuracy'])}"
           if "next_sentence_accuracy" in pre else ""),
        f"  minilm/                    the real MiniLM-L6 BERT, "
        f"{done['import']['loaded_weights']} weights imported",
        f"  sst2_classifier/           fine-tuned on {tuned['train_rows']} SST-2 rows: "
        f"accuracy {_fraction(tuned['accuracy'])}, F1 {_fraction(tuned['f1'])} on "
        f"{tuned['eval_rows']} held-out rows (best of the evaluations, step "
        f"{tuned.get('best_step', tuned.get('global_step'))})",
        f"  {done['export']['version_dir'] + '/':27s}the text-in SavedModel for TF "
        "Serving",
        "  plots/                     " + ", ".join(done["pictures"]["pictures"]),
        "",
        "The exported model, loaded in a process with only tensorflow and "
        "tensorflow_text, says:",
    ]
    serving = done["serving"]
    for sentence, label, probabilities in zip(serving["sentences"], serving["labels"],
                                              serving["probabilities"]):
        lines.append(f"  {label:8s} {max(probabilities):.3f}  {sentence}")
    example = shlex.quote('text_a=["a gripping film", "a dull mess"]')
    lines += [
        "",
        "Look further:",
        f"  tensorboard --logdir {shlex.quote(out)}        "
        "# both runs' curves (.venv/bin/tensorboard)",
        f"  {python} -c \"import tensorflow_text; from tensorflow.python.tools."
        "saved_model_cli import main; main()\" \\",
        f"      run --dir {shlex.quote(version_dir)} --tag_set serve "
        f"--signature_def serving_default --input_exprs {example}",
        f"  tensorflow_model_server --rest_api_port=8501 --model_name=sst2 "
        f"--model_base_path={shlex.quote(export_base)}",
        "  curl -d '{\"inputs\": {\"text_a\": [\"a gripping film\"]}}' "
        "localhost:8501/v1/models/sst2:predict",
        f"  {python} -m pipelines.plot_logs --model_dir={shlex.quote(out)}/sst2_classifier",
        "",
    ]
    return "\n".join(lines)
