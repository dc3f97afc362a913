#!/usr/bin/env python3
"""Writes the seed corpus for the safetensors header fuzzer: small valid files and files that are
wrong in one way each (the parser must refuse them without crashing). Re-run to regenerate:
    python3 tests/fuzz/make_seed_corpus.py tests/fuzz/corpus/safetensors_header
"""
import json
import os
import struct
import sys


def file_bytes(header, data_len, header_text=None):
    text = (header_text if header_text is not None else json.dumps(header, separators=(",", ":"))).encode()
    return struct.pack("<Q", len(text)) + text + bytes(i % 251 for i in range(data_len))


def layout(tensors):
    """tensors: [(name, dtype, shape)] back to back -> (header, data_len)."""
    size = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1,
            "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n * size[dtype]]}
        offset += n * size[dtype]
    return header, offset


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    seeds = {}
    h, n = layout([("model.embed_tokens.weight", "BF16", [8, 4]), ("model.norm.weight", "BF16", [4]),
                   ("lm_head.weight", "F32", [8, 4])])
    seeds["valid_small"] = file_bytes(h, n)
    h, n = layout([("w", "F8_E4M3", [4, 4]), ("w_scale_inv", "F32", [1, 1]), ("i", "I64", [2]), ("s", "F16", [])])
    seeds["valid_mixed_dtypes"] = file_bytes(h, n)
    h, n = layout([("empty", "F32", [0]), ("x", "BF16", [3, 0, 2]), ("y", "U8", [5])])
    seeds["valid_zero_sized"] = file_bytes(h, n)
    seeds["valid_empty_header"] = file_bytes({}, 0)
    seeds["valid_padded_header"] = file_bytes(None, 4, header_text='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}    ')
    h, n = layout([("a", "BF16", [2, 2])])
    full = file_bytes(h, n)
    seeds["truncated_data"] = full[:-3]
    seeds["truncated_header"] = full[:20]
    seeds["too_short"] = b"\x05\x00\x00"
    seeds["length_lies"] = struct.pack("<Q", 1 << 40) + b'{"a":1}'
    seeds["bad_json"] = file_bytes(None, 0, header_text='{"a": {"dtype": "F32", "shape": [1], ')
    seeds["not_object"] = file_bytes(None, 0, header_text="[1,2,3]")
    seeds["size_mismatch"] = file_bytes(None, 10, header_text='{"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,10]}}')
    seeds["overlap"] = file_bytes(None, 24, header_text='{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
                                                       '"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}')
    seeds["offsets_reversed"] = file_bytes(None, 8, header_text='{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}')
    seeds["offsets_past_end"] = file_bytes(None, 4, header_text='{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}')
    seeds["rank_9"] = file_bytes(None, 1, header_text='{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}')
    seeds["numel_overflow"] = file_bytes(None, 4, header_text='{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],'
                                                             '"data_offsets":[0,0]}}')
    seeds["negative_dim"] = file_bytes(None, 4, header_text='{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}')
    seeds["unknown_dtype"] = file_bytes(None, 1, header_text='{"a":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,1]}}')
    seeds["duplicate_name"] = file_bytes(None, 8, header_text='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                                             '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')
    seeds["metadata_not_strings"] = file_bytes(None, 0, header_text='{"__metadata__":{"format":1}}')
    seeds["float_offsets"] = file_bytes(None, 4, header_text='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.0,4.0]}}')
    seeds["huge_offsets"] = file_bytes(None, 4, header_text='{"a":{"dtype":"F32","shape":[1],'
                                                           '"data_offsets":[18446744073709551612,18446744073709551615]}}')
    seeds["deep_nesting"] = file_bytes(None, 0, header_text='{"a":' + "[" * 200 + "]" * 200 + "}")
    for name, data in seeds.items():
        with open(os.path.join(out_dir, name + ".safetensors"), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "safetensors_header"))
