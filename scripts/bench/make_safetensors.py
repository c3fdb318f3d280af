#!/usr/bin/env python3
"""Write a synthetic safetensors file for benchmarks (standard library only).

    make_safetensors.py OUT TOTAL_BYTES [TENSORS]

The file holds TENSORS float32 tensors (default 100) named like a transformer's
(`model.layers.N.weight`) that together take TOTAL_BYTES of data, laid out as
safetensors.torch.save_file would, with metadata {"format": "pt"}. The data is a
repeated byte pattern, written for real (not a sparse file).
"""
import json
import struct
import sys


def main() -> None:
    out, total = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    per_tensor = max(4, (total // count) // 4 * 4)
    header = {"__metadata__": {"format": "pt"}}
    names = sorted(f"model.layers.{i}.weight" for i in range(count))
    offset = 0
    for name in names:
        header[name] = {"dtype": "F32", "shape": [per_tensor // 4], "data_offsets": [offset, offset + per_tensor]}
        offset += per_tensor
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        left = offset
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


if __name__ == "__main__":
    main()
