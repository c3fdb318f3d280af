"""Randomized state dicts written by save_file: ckpt converts them to identical bytes."""

from __future__ import annotations

import random

import pytest
import torch
from safetensors.torch import save_file

from support import assert_success, check_inspect, inspect_json, run_ckpt

SEED = 20_250_101
CASES = 30

DTYPES = [
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16, torch.int32, torch.uint32,
    torch.int64, torch.uint64, torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.complex64, torch.float8_e5m2, torch.float8_e4m3fn, torch.float8_e5m2fnuz,
    torch.float8_e4m3fnuz, torch.float8_e8m0fnu, torch.float4_e2m1fn_x2,
]  # every dtype safetensors.torch can save
NAME_CHARS = "abcxyz019._-/ ÄéßñЖ名前🙂\t:"
DIMS = [0, 1, 1, 2, 3, 4, 5, 7]


def random_shape(rng: random.Random, dtype: torch.dtype) -> tuple:
    # 0-d float4_e2m1fn_x2 cannot be saved: save_file doubles the last dimension, and a
    # scalar has none (the reference raises "does not end up at a byte boundary").
    rank = rng.choice([0, 1, 1, 2, 2, 3, 4]) if dtype != torch.float4_e2m1fn_x2 else rng.randint(1, 4)
    return tuple(rng.choice(DIMS) for _ in range(rank))


def random_tensor(rng: random.Random, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    shape = random_shape(rng, dtype)
    numel = 1
    for d in shape:
        numel *= d
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).to(torch.bool)
    size = torch.empty(0, dtype=dtype).element_size()
    # Any bit pattern, including NaNs with payloads, infinities and subnormals.
    raw = torch.randint(0, 256, (numel * size,), dtype=torch.uint8, generator=gen)
    return raw.view(dtype).reshape(shape)


def random_name(rng: random.Random) -> str:
    return "".join(rng.choice(NAME_CHARS) for _ in range(rng.randint(0, 12)))


def random_case(index: int):
    rng = random.Random(SEED + index)
    gen = torch.Generator().manual_seed(SEED + index)
    tensors = {}
    for _ in range(rng.randint(0, 8)):
        name = random_name(rng)
        if name in tensors or name == "__metadata__":
            continue
        tensors[name] = random_tensor(rng, gen, rng.choice(DTYPES))
    metadata = rng.choice([None, {"format": "pt"}, {random_name(rng): random_name(rng)}])
    return tensors, metadata


@pytest.mark.parametrize("index", range(CASES))
def test_random_state_dict(index, tmp_path):
    tensors, metadata = random_case(index)
    src = tmp_path / "src.safetensors"
    save_file(tensors, str(src), metadata=metadata)
    out = tmp_path / "out.safetensors"
    assert_success(run_ckpt("convert", src, out))
    assert out.read_bytes() == src.read_bytes(), "convert of a save_file output is not identical"
    check_inspect(src, inspect_json(src, "--hash"))
