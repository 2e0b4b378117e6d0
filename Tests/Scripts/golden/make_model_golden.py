#!/usr/bin/env python3
"""Golden numbers for Loupe's transformer, from Hugging Face transformers in fp32.

Loads the same GGUF Loupe runs (transformers dequantizes it to fp32 and un-permutes q/k for its
half-split RoPE), runs each paragraph below with no BOS added, and writes for each one: the token
ids, the mean next-token cross-entropy, the per-position argmax of the logits, and the
last-position logits (float32, little-endian, base64).

    /path/to/venv/bin/python Tests/Scripts/golden/make_model_golden.py [GGUF]

needs: pip install torch transformers gguf accelerate
writes: Tests/ModelTests/Golden/model_golden.json
"""
import base64
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
GGUF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "Tests/ModelTests/Golden/model_golden.json")

PARAGRAPHS = [
    # narrative prose
    "It was a bright cold day in April, and the clocks were striking thirteen. The wind swept little "
    "eddies of dust and torn paper into spirals along the pavement, and though the sun was shining "
    "and the sky a harsh blue, there seemed to be no colour in anything except the posters that were "
    "plastered everywhere.",
    # expository text with numbers
    "The Danube is Europe's second-longest river, flowing 2,850 kilometres from the Black Forest in "
    "Germany to the Black Sea. Along the way it passes through ten countries and four capital cities: "
    "Vienna, Bratislava, Budapest and Belgrade. In 1992 the Rhine-Main-Danube Canal connected it to the "
    "North Sea, creating a waterway of about 3,500 km.",
    # source code
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n"
    "        a, b = b, a + b\n    return a\n\n\nif __name__ == \"__main__\":\n    print([fibonacci(i) for i in range(10)])\n",
    # dialogue in the chat format, special tokens included
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France, and why is it famous?<|im_end|>\n"
    "<|im_start|>assistant\nThe capital of France is Paris. It is famous for the Eiffel Tower, the Louvre "
    "museum, its cafés and its long history as a centre of art and science.<|im_end|>\n",
    # a recipe: lists, short lines, units
    "Ingredients:\n- 200 g flour\n- 2 eggs\n- 300 ml milk\n- a pinch of salt\n\nWhisk the eggs and the milk "
    "together, then add the flour little by little until the batter is smooth. Let it rest for 30 minutes "
    "before frying thin pancakes in a hot, lightly buttered pan.",
    # letters, quotes, punctuation and unicode
    "Dear Dr. O'Neill,\n\nThank you for your letter of 3 March. I'm afraid we can't attend the meeting in "
    "Zürich — the trains are on strike again (\"indefinitely\", they say). Could we meet on the 12th "
    "instead? Best wishes, Søren",
]


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    d, name = os.path.split(GGUF)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    cases = []
    for text in PARAGRAPHS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            out = model(x, labels=x)
        logits = out.logits[0].float()
        top2 = torch.topk(logits, 2, dim=-1).values
        cases.append({
            "text": text,
            "ids": ids,
            "mean_ce": float(out.loss),
            "argmax": logits.argmax(-1).tolist(),
            "min_top2_gap": float((top2[:, 0] - top2[:, 1]).min()),
            "last_logits_f32_b64": base64.b64encode(logits[-1].numpy().astype("<f4").tobytes()).decode(),
        })
        print(f"{len(ids):4d} tokens  mean CE {float(out.loss):.6f}", file=sys.stderr)
    doc = {
        "source": f"Tests/Scripts/golden/make_model_golden.py: transformers {transformers.__version__}, torch {torch.__version__}, "
                  f"fp32, from_pretrained(gguf_file={name}), no BOS, labels = input ids",
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
