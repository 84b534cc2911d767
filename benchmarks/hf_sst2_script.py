"""The plain Hugging Face fine-tuning script a user would write: a BERT sentence
classifier on CPU torch from a Hugging Face model directory and two TSV files
(`sentence<TAB>label` with a header), then the accuracy on the second.

wall_time_benchmark.py times this process from launch to exit against
`pipelines.run_classifier --do_train --do_eval`. It stays a self-contained user
script on purpose (no project or benchmark imports): its imports, loading and
tokenisation are part of what is timed. What it does is what `Trainer` does by default,
written out: the fast tokenizer (truncation at `--max_length`), shuffled batches padded
to their longest sentence by `DataCollatorWithPadding`, AdamW with weight decay except
on biases and LayerNorm (epsilon 1e-6 as ours; Trainer's is 1e-8), linear warm-up then
linear decay (`get_linear_schedule_with_warmup`), gradients clipped at 1.0, dropout
on. The lines "first training step done" and "accuracy" are read by the benchmark.

    python benchmarks/hf_sst2_script.py --model_dir=MINILM --train_file=train.tsv \
        --eval_file=dev.tsv
"""

import argparse
import csv
import math
import time

import torch
import transformers


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True, help="Hugging Face BERT directory")
    parser.add_argument("--train_file", required=True)
    parser.add_argument("--eval_file", required=True)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1, help="share of steps")
    parser.add_argument("--weight_decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return parser.parse_args()


def read_tsv(path):
    """(sentences, labels); quoting off: SST-2 has bare quotes inside sentences."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def features(tokenizer, path, max_length):
    sentences, labels = read_tsv(path)
    encoded = tokenizer(sentences, truncation=True, max_length=max_length)
    return [{**{k: v[i] for k, v in encoded.items()}, "labels": labels[i]}
            for i in range(len(labels))]


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    transformers.set_seed(args.seed)
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model_dir)
    model = transformers.BertForSequenceClassification.from_pretrained(args.model_dir,
                                                                       num_labels=2)
    collator = transformers.DataCollatorWithPadding(tokenizer)
    train = features(tokenizer, args.train_file, args.max_length)
    loader = torch.utils.data.DataLoader(
        train, batch_size=args.batch_size, shuffle=True, collate_fn=collator,
        generator=torch.Generator().manual_seed(args.seed))
    steps = math.ceil(len(loader) * args.epochs)
    exempt = lambda name: "bias" in name or "LayerNorm" in name  # noqa: E731
    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if not exempt(n)],
          "weight_decay": args.weight_decay},
         {"params": [p for n, p in named if exempt(n)], "weight_decay": 0.0}],
        lr=args.learning_rate, eps=1e-6)
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, int(steps * args.warmup), steps)

    print(f"training: {len(train)} examples, {steps} steps of {args.batch_size}",
          flush=True)
    start = time.perf_counter()
    model.train()
    step = 0
    while step < steps:
        for batch in loader:
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step == 1:
                print("first training step done", flush=True)
            if step == steps:
                break
    print(f"trained {steps} steps in {time.perf_counter() - start:.1f} s", flush=True)

    model.eval()
    dev = features(tokenizer, args.eval_file, args.max_length)
    correct = 0
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(dev, batch_size=args.eval_batch_size,
                                                 collate_fn=collator):
            labels = batch.pop("labels")
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
    print(f"accuracy {correct / len(dev):.4f} ({correct}/{len(dev)})", flush=True)


if __name__ == "__main__":
    main()
