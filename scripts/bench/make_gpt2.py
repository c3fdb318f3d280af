#!/usr/bin/env python3
"""Write a GPT-2-small-sized checkpoint with torch.save, for benchmarks.

    make_gpt2.py OUT [--legacy] [--layers N] [--width K]

The state dict has GPT-2 small's names and shapes (124M float32 parameters: 12 layers,
d_model 768, vocabulary 50257, context 1024) with random weights, and an `lm_head.weight`
tied to `transformer.wte.weight` (the same storage), as transformers' GPT2LMHeadModel
saves it. Two ways to make a model four times as large (about 500M parameters, 1.9 GiB),
for checking that memory stays flat: `--layers 65` (785 tensors) or `--width 2` (d_model
and vocabulary doubled: the same 149 tensors, each about four times larger). Needs torch (run it with the interop venv's python).
"""
import sys
from collections import OrderedDict

import torch


def main() -> None:
    out = sys.argv[1]
    args = sys.argv[2:]
    legacy = "--legacy" in args
    layers = int(args[args.index("--layers") + 1]) if "--layers" in args else 12
    width = int(args[args.index("--width") + 1]) if "--width" in args else 1
    torch.manual_seed(0)
    d, vocab, ctx = 768 * width, 50257 * width, 1024
    sd = OrderedDict()
    wte = torch.randn(vocab, d) * 0.02
    sd["transformer.wte.weight"] = wte
    sd["transformer.wpe.weight"] = torch.randn(ctx, d) * 0.01
    for i in range(layers):
        p = f"transformer.h.{i}."
        sd[p + "ln_1.weight"] = torch.ones(d)
        sd[p + "ln_1.bias"] = torch.zeros(d)
        sd[p + "attn.c_attn.weight"] = torch.randn(d, 3 * d) * 0.02
        sd[p + "attn.c_attn.bias"] = torch.zeros(3 * d)
        sd[p + "attn.c_proj.weight"] = torch.randn(d, d) * 0.02
        sd[p + "attn.c_proj.bias"] = torch.zeros(d)
        sd[p + "ln_2.weight"] = torch.ones(d)
        sd[p + "ln_2.bias"] = torch.zeros(d)
        sd[p + "mlp.c_fc.weight"] = torch.randn(d, 4 * d) * 0.02
        sd[p + "mlp.c_fc.bias"] = torch.zeros(4 * d)
        sd[p + "mlp.c_proj.weight"] = torch.randn(4 * d, d) * 0.02
        sd[p + "mlp.c_proj.bias"] = torch.zeros(d)
    sd["transformer.ln_f.weight"] = torch.ones(d)
    sd["transformer.ln_f.bias"] = torch.zeros(d)
    sd["lm_head.weight"] = wte  # tied
    torch.save(sd, out, _use_new_zipfile_serialization=not legacy)
    n = sum(t.numel() for k, t in sd.items() if k != "lm_head.weight")
    print(f"wrote {out}: {len(sd)} tensors, {n} parameters (lm_head tied)")


if __name__ == "__main__":
    main()
