"""The residual stream leaving one layer of SmolLM2 at position 0 of a window against the other positions.

Why: a residual-stream SAE is trained, evaluated and spliced on 64-token windows that each run as
their own sequence; Llama-family models put a huge-norm "attention sink" vector at a sequence's
first position. This prints its size so the choice to keep position 0 out (README, "SAEs on the
residual stream") rests on a figure.

Usage: python residual_norms.py GGUF CORPUS_DIR [--layer 15] [--windows 64]
(needs torch, transformers and gguf; from_pretrained(gguf_file=...) in fp32)."""
import argparse, glob, os
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("gguf"); ap.add_argument("corpus")
ap.add_argument("--layer", type=int, default=15); ap.add_argument("--windows", type=int, default=64)
a = ap.parse_args()
d, name = os.path.dirname(a.gguf), os.path.basename(a.gguf)
tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, torch_dtype=torch.float32).eval()
files = sorted(glob.glob(os.path.join(a.corpus, "**", "*.txt"), recursive=True))
ids = []
for f in files[:: max(1, len(files) // 40)]:
    ids += tok(open(f, encoding="utf-8", errors="replace").read()[:20000], add_special_tokens=False)["input_ids"]
L = 64
wins = [ids[i * L * 7:(i * 7 + 1) * L] for i in range(a.windows) if (i * 7 + 1) * L <= len(ids)]
x = torch.tensor(wins)
with torch.no_grad():
    h = model(x, output_hidden_states=True).hidden_states[a.layer + 1]  # leaving layer `layer`
norms = h.norm(dim=-1)  # [windows, 64]
first, rest = norms[:, 0], norms[:, 1:]
var_all = ((h - h.mean(dim=(0, 1))) ** 2).sum()
var_first = ((h[:, 0] - h.mean(dim=(0, 1))) ** 2).sum()
print(f"{len(wins)} windows of {L} tokens, residual leaving layer {a.layer}")
print(f"norm at position 0: mean {first.mean():.1f} (min {first.min():.1f}, max {first.max():.1f})")
print(f"norm at positions 1-63: mean {rest.mean():.1f} (median {rest.median():.1f}, max {rest.max():.1f})")
print(f"ratio of means: {first.mean() / rest.mean():.1f}x")
print(f"share of the total variance (about the mean over all tokens) at position 0: {var_first / var_all:.3f} (1/64 = {1/64:.3f})")
big = (rest > 10 * rest.median()).nonzero().tolist()
print(f"positions 1-63 above 10x the median norm: {len(big)} of {rest.numel()}; their tokens:",
      sorted({tok.decode([wins[w][p + 1]]) for w, p in big})[:12])
top = h[:, 0].abs().mean(dim=0).topk(4)
print("largest dimensions at position 0 (mean |value|):", [(int(i), round(float(v), 1)) for v, i in zip(top.values, top.indices)])
