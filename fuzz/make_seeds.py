#!/usr/bin/env python3
"""Writes the seed corpus for the `gguf_header` fuzz target.

    fuzz/make_seeds.py [CORPUS_DIR] [MODEL]

CORPUS_DIR defaults to fuzz/corpus/gguf_header. Seeds:
  * tiny.gguf      a small synthetic GGUF v3 (llama metadata, a string array,
                   three tiny tensors with their data), valid end to end;
  * tiny_v2.gguf   the same as version 2;
  * tiny_align.gguf  general.alignment = 64, u32 array, nested array;
  * model_prefix_4k.gguf  the first 4096 bytes of MODEL (default: the test
                   model in models/), when that file exists.
Generated files are not committed (/fuzz/corpus is in .gitignore).
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# GGUF metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
              F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


def gguf_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(vtype, v):
    if vtype == STRING:
        return gguf_str(v)
    if vtype == ARRAY:
        elem_type, items = v
        out = struct.pack("<IQ", elem_type, len(items))
        for item in items:
            out += value(elem_type, item)
        return out
    return struct.pack(SCALAR_FMT[vtype], v)


def kv(key, vtype, v):
    return gguf_str(key) + struct.pack("<I", vtype) + value(vtype, v)


# (name, dims, ggml type id, bytes of data)
def tensor_bytes(dims, ggml_type):
    n = 1
    for d in dims:
        n *= d
    block, size = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 8: (32, 34)}[ggml_type]
    assert n % block == 0
    return n // block * size


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: list of encoded kv entries; tensors: list of (name, dims, type)."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    out += b"".join(kvs)
    offset = 0
    layout = []
    for name, dims, ggml_type in tensors:
        out += gguf_str(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
        n_bytes = tensor_bytes(dims, ggml_type)
        layout.append(n_bytes)
        offset += n_bytes
        offset = (offset + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for n_bytes in layout:
        out += bytes((i * 7 + 3) & 0xFF for i in range(n_bytes))
        out += b"\0" * (-len(out) % alignment)
    return out


def llama_kvs(extra=()):
    return [
        kv("general.architecture", STRING, "llama"),
        kv("general.name", STRING, "tiny-fuzz-seed"),
        kv("general.file_type", U32, 3),
        kv("llama.block_count", U32, 2),
        kv("llama.context_length", U32, 256),
        kv("llama.embedding_length", U32, 32),
        kv("llama.attention.head_count", U32, 4),
        kv("llama.attention.head_count_kv", U32, 2),
        kv("llama.rope.freq_base", F32, 10000.0),
        kv("tokenizer.ggml.model", STRING, "gpt2"),
        kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["<s>", "</s>", "a", "b", "\u00e9"])),
        kv("tokenizer.ggml.scores", ARRAY, (F32, [0.0, 0.0, -1.0, -2.0, -3.0])),
        kv("tokenizer.ggml.add_bos_token", BOOL, True),
        *extra,
    ]


TENSORS = [
    ("token_embd.weight", [32, 5], 3),       # q4_1
    ("output_norm.weight", [32], 0),         # f32
    ("blk.0.attn_q.weight", [32, 4], 1),     # f16
]


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "gguf_header")
    model = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    os.makedirs(corpus, exist_ok=True)
    seeds = {
        "tiny.gguf": gguf(llama_kvs(), TENSORS),
        "tiny_v2.gguf": gguf(llama_kvs(), TENSORS, version=2),
        "tiny_align.gguf": gguf(
            llama_kvs([
                kv("general.alignment", U32, 64),
                kv("llama.vocab_size", U64, 5),
                kv("tokenizer.ggml.token_type", ARRAY, (I32, [1, 3, 1, 1, 6])),
                kv("test.nested", ARRAY, (ARRAY, [(U8, [1, 2]), (BOOL, [True])])),
                kv("test.f64", F64, 0.5),
            ]),
            TENSORS,
            alignment=64,
        ),
    }
    if os.path.exists(model):
        with open(model, "rb") as f:
            seeds["model_prefix_4k.gguf"] = f.read(4096)
    else:
        print(f"make_seeds: {model} not found, skipping its prefix seed", file=sys.stderr)
    for name, data in seeds.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)
    print(f"make_seeds: wrote {len(seeds)} seeds to {corpus}", file=sys.stderr)


if __name__ == "__main__":
    main()
