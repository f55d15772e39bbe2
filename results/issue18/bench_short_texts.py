"""Issue 18 figures, one process, side by side: FNet (length buckets) vs BERT (dynamic padding), preset mini,
same scratch start (seed 0) on SST-2: padding per real token, training and predict examples/s, a length sweep,
and dev accuracy with buckets vs fixed 128 (short runs). Timed in process CPU seconds on one thread, which a
shared, overloaded machine disturbs far less than wall-clock time.
Usage: python bench_short_texts.py TOKENIZER STEPS SEEDS ACC_PRESET ACC_STEPS (STEPS 0: accuracy only)"""

import itertools
import json
import statistics
import sys
import time

import torch

from tokenmix.benchmarks.glue import read_split
from tokenmix.models.factory import create_model
from tokenmix.text.pairs import PairBatches, encode, padding_policy, predict_logits
from tokenmix.text.tokenizer import Tokenizer

torch.set_num_threads(1)
tok = Tokenizer.load(sys.argv[1])
steps, seeds, acc_preset, acc_steps = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
train = encode(tok, read_split("../shared/data/glue", "sst2", "train").examples, 128)
dev_split = read_split("../shared/data/glue", "sst2", "dev")
dev = encode(tok, dev_split.examples, 128)
gold = torch.tensor([e.label for e in dev_split.examples])


def model(name, seed=0, preset="mini"):
    torch.manual_seed(seed)
    return create_model(name, preset, head="classification", num_labels=2, vocab_size=tok.vocab_size,
                        pad_token_id=tok.pad_id, fourier_impl="fft")


def batches(m, data, size, spec="auto", seed=0):
    fixed, buckets = padding_policy(m.config, 128, spec)
    return PairBatches(data, size, tok.pad_id, fixed, seed, buckets=buckets)


def pad_ratio(b):
    real = sum(len(x) for x in b.data.input_ids)
    padded = sum(batch["input_ids"].numel() for batch in b(0))
    return (padded - real) / real


def train_steps(m, b, n, lr=1e-4):
    opt = torch.optim.AdamW(m.parameters(), lr=lr)
    m.train()
    it, seen, start = b(0), 0, time.process_time()
    for _ in range(n):
        batch = next(it)
        loss = m(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        seen += len(batch["labels"])
    return seen / (time.process_time() - start)


def warm(m, b):  # one forward+backward per length of the timed batches (allocator, caches), untimed
    lengths = {}
    for batch in itertools.islice(b(0), 3 * steps):
        lengths.setdefault(batch["input_ids"].shape[1], batch)
    for batch in lengths.values():
        m(**batch).loss.backward()
    m.zero_grad()


out = {}
if steps:  # 0: the accuracy runs only
    fnet, bert = model("fnet"), model("bert")
    bf, bb, b128 = batches(fnet, train, 32), batches(bert, train, 32), batches(fnet, train, 32, "fixed")
    out["pad_per_real_token"] = {"fnet_auto_buckets": pad_ratio(bf), "bert_dynamic": pad_ratio(bb),
                                 "fnet_fixed_128": pad_ratio(b128)}
    print(out, flush=True)
    for m, b in ((fnet, bf), (bert, bb)):
        warm(m, b)
    train_rate = {"fnet": [], "bert": []}
    for _ in range(3):  # alternate to share the machine's load fairly
        for name, m, b in (("fnet", fnet, bf), ("bert", bert, bb)):
            train_rate[name].append(train_steps(m, b, steps))
    out["train_examples_per_s"] = {k: statistics.median(v) for k, v in train_rate.items()}
    out["train_ratio"] = out["train_examples_per_s"]["fnet"] / out["train_examples_per_s"]["bert"]
    print(out, flush=True)
    pred = {"fnet": [], "bert": []}
    for m in (fnet, bert):
        m.eval()
    for _ in range(3):
        for name, m in (("fnet", fnet), ("bert", bert)):
            b = batches(m, dev, 64)
            start = time.process_time()
            predict_logits(m, b)
            pred[name].append(len(dev.input_ids) / (time.process_time() - start))
    out["predict_examples_per_s"] = {k: statistics.median(v) for k, v in pred.items()}
    out["predict_ratio"] = out["predict_examples_per_s"]["fnet"] / out["predict_examples_per_s"]["bert"]
    print(out, flush=True)
    sweep = {}
    with torch.inference_mode():
        for length in (8, 16, 32, 64, 128, 256, 512):
            ids = torch.randint(5, tok.vocab_size, (8, length))
            times = {}
            for name, m in (("fnet", fnet), ("bert", bert)):
                m(input_ids=ids)
                runs = []
                for _ in range(5):
                    start = time.process_time()
                    m(input_ids=ids)
                    runs.append(time.process_time() - start)
                times[name] = 1e3 * statistics.median(runs)
            sweep[length] = {**times, "bert/fnet": times["bert"] / times["fnet"]}
            print(length, sweep[length], flush=True)
    out["forward_cpu_ms_batch8"] = sweep
if seeds:
    acc = {"auto": [], "fixed": []}
    for seed in range(seeds):
        for spec in ("auto", "fixed"):
            m = model("fnet", seed, acc_preset)
            b = batches(m, train, 32, spec, seed)
            train_steps(m, b, acc_steps, lr=5e-4)
            m.eval()
            pred_ = predict_logits(m, batches(m, dev, 64, spec)).argmax(-1)
            acc[spec].append(100 * (pred_ == gold).float().mean().item())
            print(spec, seed, acc[spec][-1], flush=True)
    out["dev_accuracy"] = {k: {"runs": v, "mean": statistics.mean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0}
                           for k, v in acc.items()}
print(json.dumps(out, indent=1))
