"""FVU of a residual-SAE workspace's SAE on its held-out activations, with and without the rare
positions whose residual has an attention-sink-sized norm.

Why: the residual stream's variance is dominated by a handful of huge-norm positions (every
window's first, which Loupe leaves out, and ~0.1% of the others, e.g. some newlines), which an SAE
reconstructs easily; the FVU `loupe build` reports counts them. This prints both.

Usage: python residual_fvu.py WORKSPACE [--factor 10]   (numpy only; reads activations/heldout-*.f16,
heldout.json and transcoder/layers.<L>/{cfg.json,sae.safetensors} as Loupe writes them)."""
import argparse, json, os, struct
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("workspace"); ap.add_argument("--factor", type=float, default=10)
a = ap.parse_args()
ws = json.load(open(os.path.join(a.workspace, "workspace.json")))
assert ws.get("site") == "residual", "not a residual-SAE workspace"
store = json.load(open(os.path.join(a.workspace, "activations/heldout.json")))
d, L = store["dim"], store["window_length"]
assert store.get("columns") == 1
x = np.concatenate([np.fromfile(os.path.join(a.workspace, "activations", s["file"]), dtype=np.float16).reshape(-1, d)
                    for s in store["shards"]]).astype(np.float32)
keep = np.arange(len(x)) % L != 0  # each window's first position is left out, as Loupe does
x = x[keep]

sae_dir = os.path.join(a.workspace, "transcoder", f"layers.{ws['layer']}")
cfg = json.load(open(os.path.join(sae_dir, "cfg.json")))
raw = open(os.path.join(sae_dir, "sae.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
def tensor(name):
    h = header[name]; b, e = h["data_offsets"]
    return np.frombuffer(raw[8 + n + b:8 + n + e], dtype=np.float32).reshape(h["shape"])
W_enc, b_enc, W_dec, b_dec, k = tensor("encoder.weight"), tensor("encoder.bias"), tensor("W_dec"), tensor("b_dec"), cfg["k"]

recon = np.empty_like(x)
for i in range(0, len(x), 2048):
    pre = np.maximum((x[i:i + 2048] - b_dec) @ W_enc.T + b_enc, 0)
    idx = np.argpartition(-pre, k - 1, axis=1)[:, :k]
    z = np.zeros_like(pre); np.put_along_axis(z, idx, np.take_along_axis(pre, idx, axis=1), axis=1)
    recon[i:i + 2048] = z @ W_dec + b_dec

def fvu(mask):
    xs, rs = x[mask], recon[mask]
    return float(((xs - rs) ** 2).sum() / ((xs - xs.mean(0)) ** 2).sum())
norms = np.linalg.norm(x, axis=1)
sink = norms > a.factor * np.median(norms)
print(f"{len(x)} held-out tokens (first positions left out), k = {k}, {W_enc.shape[0]} latents")
print(f"FVU, all of them: {fvu(np.ones(len(x), bool)):.4f}")
print(f"positions with norm > {a.factor:g}x the median ({np.median(norms):.0f}): {int(sink.sum())} "
      f"({sink.mean():.2%}), {((x[sink] - x.mean(0)) ** 2).sum() / ((x - x.mean(0)) ** 2).sum():.1%} of the variance")
print(f"FVU without them: {fvu(~sink):.4f}")
