"""Minimal independent safetensors reader for tests (python3 stdlib only)."""
import json, struct, sys

def load(path):
    """-> (header dict without __metadata__, metadata or None, data bytes, header length)"""
    b = open(path, 'rb').read() if path != '-' else sys.stdin.buffer.read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', None)
    return h, meta, b[8 + n:], n

def tensors(path):
    """name -> (dtype, shape, bytes)"""
    h, _, d, _ = load(path)
    return {k: (v['dtype'], v['shape'], d[v['data_offsets'][0]:v['data_offsets'][1]]) for k, v in h.items()}

def folder(path):
    """All tensors of an HF folder (single file or index + shards)."""
    import os
    idx = os.path.join(path, 'model.safetensors.index.json')
    if os.path.exists(idx):
        out = {}
        for f in sorted(set(json.load(open(idx))['weight_map'].values())):
            out.update(tensors(os.path.join(path, f)))
        return out
    return tensors(os.path.join(path, 'model.safetensors'))
