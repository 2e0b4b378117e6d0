#!/usr/bin/env python3
"""Loupe's prefill against PyTorch fp32 on the same machine, in the same run.

Both run the same GGUF on the same 256 token ids (Loupe's tokenization of its benchmark text),
from an empty cache, computing last-position logits only, on the same number of threads; each
reports the median of several runs after a warm-up. The two are measured alternately, twice, so
a noisy neighbour hurts both alike. Prints both figures and their ratio.

    /path/to/venv/bin/python Tests/Scripts/bench/compare_forward.py [--tokens 256] [--threads 2] [--runs 7]

needs: pip install torch transformers gguf accelerate; a release build (swift build -c release)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LOUPE = os.path.join(ROOT, ".build/release/loupe")
GGUF = os.path.join(ROOT, "data/models/SmolLM2-135M-Instruct.Q4_1.gguf")


def loupe_bench(tokens, threads, runs):
    out = subprocess.run([LOUPE, "bench", "forward", "--tokens", str(tokens), "--threads", str(threads),
                          "--runs", str(runs), "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def torch_bench(model, ids, runs):
    x = torch.tensor([ids])
    with torch.inference_mode():
        model(x, logits_to_keep=1)  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x, logits_to_keep=1, use_cache=False)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=7)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    d, name = os.path.split(GGUF)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
    # The same ids Loupe benchmarks (its benchmark text, tokenized by Loupe), from a short first run.
    ids = loupe_bench(a.tokens, a.threads, 1)["ids"]
    assert len(ids) == a.tokens

    rows = []
    for round_ in range(2):
        t = torch_bench(model, ids, a.runs)
        lb = loupe_bench(a.tokens, a.threads, a.runs)
        rows.append((a.tokens / t, lb["tokens_per_s"], lb))
        print(f"round {round_ + 1}: pytorch fp32 {a.tokens / t:7.1f} tok/s   loupe {lb['tokens_per_s']:7.1f} tok/s   "
              f"ratio {lb['tokens_per_s'] / (a.tokens / t):.2f}x")
    pt = statistics.median([r[0] for r in rows])
    lp = statistics.median([r[1] for r in rows])
    last = rows[-1][2]
    print(f"\nmethod: {a.tokens}-token prefill, last-position logits, {a.threads} threads, median of {a.runs} runs "
          f"after a warm-up, two alternating rounds (PyTorch {torch.__version__} fp32 via transformers from the GGUF; "
          f"Loupe `bench forward`)")
    print(f"pytorch fp32: {pt:.1f} tok/s")
    print(f"loupe:        {lp:.1f} tok/s  ({last['gflops_per_s']:.1f} GFLOP/s, load {last['load_s']:.2f} s, "
          f"peak RSS {last['peak_rss_mb']:.0f} MB; kernels for {last.get('isa', '?')}, GEMM {last.get('gemm_kernel', '?')})")
    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    cpu = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "neither avx512f nor avx2"
    print(f"cpu:          {cpu} in /proc/cpuinfo, {os.cpu_count()} cores")
    print(f"speed-up:     {lp / pt:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    sys.exit(main())
