"""fp32 vs bf16 autocast LRA training steps, interleaved in one process (same load on both)."""
import statistics, sys, time, torch
from tokenmix.devices import autocast
from tokenmix.lra.speed import build_classifier
from tokenmix.train.optim import adamw
torch.manual_seed(0)
cpu = torch.device("cpu")
for task, length, batch in (("pathfinder32", 1024, 64), ("image", 1024, 64), ("text", 1000, 32)):
    for spec in ("fnet", "linear", "bert:attention_dropout=0.0"):
        model = build_classifier(spec, task, length)
        opt = adamw(model.parameters(), lr=1e-4)
        ids = torch.randint(2, model.config.vocab_size, (batch, length)); labels = torch.randint(0, model.config.num_labels, (batch,))
        times = {"fp32": [], "bf16": []}
        rounds = 3 if task == "text" or spec.startswith("bert") else 6
        for r in range(rounds + 1):
            for p in (("fp32", "bf16") if r % 2 else ("bf16", "fp32")):
                t = time.perf_counter()
                with autocast(p, cpu):
                    loss = model(input_ids=ids, labels=labels).loss
                loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
                if r:  # round 0 warms up
                    times[p].append(time.perf_counter() - t)
        f, b = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        print(f"{task} {spec}: fp32 {f*1000:.0f} ms, bf16 {b*1000:.0f} ms, fp32/bf16 {f/b:.2f}", flush=True)
