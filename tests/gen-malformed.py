#!/usr/bin/env python3
"""Write malformed safetensors files, one per defect, into OUT_DIR, plus OUT_DIR/manifest.tsv:
    <file>\t<word the error message must contain>
Every file must make st-cat fail with exit 1 and one clear line (tests/malformed.bats).
python3 stdlib only."""
import json, os, struct, sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
manifest = []

def raw(name, data, expect):
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
    manifest.append((name, expect))

def st(name, header, data, expect, hlen=None, pad=True):
    """header: dict (JSON-encoded here) or bytes used as is."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        h += b' ' * ((8 - (8 + len(h)) % 8) % 8)
    raw(name, struct.pack('<Q', len(h) if hlen is None else hlen) + h + data, expect)

def t(dtype, shape, a, b):
    return {"dtype": dtype, "shape": shape, "data_offsets": [a, b]}

ok = {"a": t("F32", [2], 0, 8), "b": t("BF16", [2, 2], 8, 16)}
data = bytes(16)

raw("empty.safetensors", b"", "empty")
raw("short-length.safetensors", b"\x10\x00\x00", "short")
st("huge-header-length.safetensors", ok, data, "100 MB", hlen=200 << 20)
st("header-past-end.safetensors", ok, data, "past the end", hlen=4096)
st("invalid-json.safetensors", b'{"a": {"dtype": "F32",', data, "JSON")
st("invalid-utf8.safetensors", b'{"a\xff\xfe": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', bytes(8), "UTF-8")
st("overlong-utf8.safetensors", b'{"a\xc0\xaf": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', bytes(8), "UTF-8")
st("nul-in-header.safetensors", b'{"a\x00": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', bytes(8), "UTF-8")
st("not-an-object.safetensors", b'[1, 2, 3]', data, "start")
st("trailing-json.safetensors", b'{"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x', bytes(8), "after")
st("metadata-not-string.safetensors", {"__metadata__": {"format": "pt", "n": 3}, **ok}, data, "not a string")
st("metadata-not-object.safetensors", {"__metadata__": ["x"], **ok}, data, "__metadata__")
st("unknown-dtype.safetensors", {"a": t("F7", [2], 0, 8)}, bytes(8), "unknown dtype")
st("duplicate-names.safetensors",
   b'{"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "a": {"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
   data, "duplicate")
st("offsets-reversed.safetensors", {"a": t("F32", [0], 8, 4), "b": t("F32", [2], 0, 8)}, bytes(8), "before")
st("overlap.safetensors", {"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, bytes(12), "overlap")
st("hole.safetensors", {"a": t("F32", [2], 0, 8), "b": t("F32", [2], 12, 20)}, bytes(20), "hole")
st("offset-past-end.safetensors", {"a": t("F32", [2], 0, 8), "b": t("F32", [4], 8, 24)}, bytes(16), "past the end")
st("trailing-data.safetensors", ok, bytes(24), "after the last")
st("nbytes-mismatch.safetensors", {"a": t("F32", [2, 2], 0, 12)}, bytes(12), "bytes")
st("negative-dim.safetensors", {"a": t("F32", [-1, 2], 0, 8)}, bytes(8), "negative")
st("shape-overflow.safetensors", {"a": t("F32", [1 << 40, 1 << 40], 0, 8)}, bytes(8), "overflow")
st("shape-not-integer.safetensors", {"a": t("F32", [2.5], 0, 8)}, bytes(8), "shape")
st("offset-not-integer.safetensors", {"a": t("F32", [2], 0.5, 8)}, bytes(8), "offsets")
st("too-many-dims.safetensors", {"a": t("F32", [1] * 9 + [2], 0, 8)}, bytes(8), "dimensions")
st("entry-not-object.safetensors", {"a": 5}, b"", "not a JSON object")
st("missing-offsets.safetensors", {"a": {"dtype": "F32", "shape": [2]}}, bytes(8), "data_offsets")
st("missing-dtype.safetensors", {"a": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8), "dtype")
st("zero-header.safetensors", b'', b'', "start", pad=False)

with open(os.path.join(out, "manifest.tsv"), "w") as f:
    for n, e in manifest:
        f.write("%s\t%s\n" % (n, e))
print(len(manifest))
