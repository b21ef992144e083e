#!/usr/bin/env python3
"""An independent reference for LoRA adapters (stdlib only): makes PEFT-shaped adapter folders with
random factors, and merges an adapter into its base the way PEFT defines it:
    Linear:    W' = W + s * B @ A             (A [r, in], B [out, r])
    Embedding: W' = W + s * (B @ A)^T         (lora_embedding_A [r, V], lora_embedding_B [C, r])
    s = alpha / r, or alpha / sqrt(r) with use_rslora; r and alpha per module from
    rank_pattern / alpha_pattern (first key K with re.match(r"(^|.*\\.)K$", module)).
    modules_to_save: base_model.model.NAME replaces NAME.
Usage:
    adapter_ref.py make BASE OUT [--rslora] [--patterns] [--embed] [--save-module NAME] [--rank R]
    adapter_ref.py merge ADAPTER BASE OUT.safetensors      (float32 merged model, config in metadata)
    adapter_ref.py compare A.safetensors B.safetensors TOL (max abs difference over common tensors)
"""
import json, math, os, random, re, struct, sys


def bf16(raw):
    n = len(raw) // 2
    return [struct.unpack('<f', struct.pack('<I', x << 16))[0] for x in struct.unpack('<%dH' % n, raw)]


def read_st(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', None)
    out = {}
    for k, v in h.items():
        a, e = v['data_offsets']
        raw = b[8 + n + a:8 + n + e]
        if v['dtype'] == 'F32':
            vals = list(struct.unpack('<%df' % (len(raw) // 4), raw))
        elif v['dtype'] == 'BF16':
            vals = bf16(raw)
        else:
            raise SystemExit('dtype %s' % v['dtype'])
        out[k] = (v['shape'], vals)
    return out, meta


def model_tensors(folder):
    if os.path.isfile(folder + '/model.safetensors'):
        return read_st(folder + '/model.safetensors')[0]
    idx = json.load(open(folder + '/model.safetensors.index.json'))['weight_map']
    out = {}
    for f in sorted(set(idx.values())):
        out.update(read_st(folder + '/' + f)[0])
    return out


def write_st(path, tensors, meta=None):
    hdr, off, blobs = {}, 0, []
    for k in sorted(tensors):
        shape, vals = tensors[k]
        raw = struct.pack('<%df' % len(vals), *vals)
        hdr[k] = {'dtype': 'F32', 'shape': shape, 'data_offsets': [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    if meta:
        hdr['__metadata__'] = meta
    h = json.dumps(hdr).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def make(base, out, rslora=False, patterns=False, embed=False, save_module=None, rank=4):
    rnd = random.Random(7)
    W = model_tensors(base)
    os.makedirs(out, exist_ok=True)
    ad = {}
    mods = sorted(k[:-7] for k in W if re.search(r'\.(q|k|v|o|gate|up|down)_proj\.weight$', k))
    for m in mods:
        o, i = W[m + '.weight'][0]
        r = rank * 2 if patterns and m.endswith('v_proj') else rank
        ad['base_model.model.%s.lora_A.weight' % m] = ([r, i], [rnd.gauss(0, 0.3) for _ in range(r * i)])
        ad['base_model.model.%s.lora_B.weight' % m] = ([o, r], [rnd.gauss(0, 0.3) for _ in range(o * r)])
    if embed:
        V, C = W['model.embed_tokens.weight'][0]
        ad['base_model.model.model.embed_tokens.lora_embedding_A'] = ([rank, V], [rnd.gauss(0, 0.3) for _ in range(rank * V)])
        ad['base_model.model.model.embed_tokens.lora_embedding_B'] = ([C, rank], [rnd.gauss(0, 0.3) for _ in range(C * rank)])
    if save_module:
        shape, vals = W[save_module]
        ad['base_model.model.' + save_module] = (shape, [v * 0.5 + 0.01 for v in vals])
    write_st(out + '/adapter_model.safetensors', ad)
    cfg = {'peft_type': 'LORA', 'r': rank, 'lora_alpha': 2 * rank, 'use_rslora': rslora, 'use_dora': False,
           'bias': 'none', 'fan_in_fan_out': False, 'task_type': 'CAUSAL_LM',
           'base_model_name_or_path': os.path.relpath(base, out),
           'target_modules': ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
           'rank_pattern': {'v_proj': rank * 2} if patterns else {},
           'alpha_pattern': {r'layers\.1\.self_attn\.q_proj': 3.0} if patterns else {}}
    json.dump(cfg, open(out + '/adapter_config.json', 'w'), indent=2)


def pattern(pat, module, default):
    for k, v in pat.items():
        if re.match(r'(^|.*\.)(%s)$' % k, module):
            return v
    return default


def merge(adapter, base, out):
    cfg = json.load(open(adapter + '/adapter_config.json'))
    W = model_tensors(base)
    ad, _ = read_st(adapter + '/adapter_model.safetensors')
    for k in list(ad):
        m = re.match(r'base_model\.model\.(.*)\.lora_(A|embedding_A)(\.weight)?$', k)
        if not m:
            if 'lora_' not in k:
                W[k[len('base_model.model.'):]] = ad[k]
            continue
        mod, emb = m.group(1), m.group(2) == 'embedding_A'
        A = ad[k]
        B = ad[k.replace('lora_A', 'lora_B').replace('lora_embedding_A', 'lora_embedding_B')]
        r = pattern(cfg.get('rank_pattern') or {}, mod, cfg['r'])
        alpha = pattern(cfg.get('alpha_pattern') or {}, mod, cfg['lora_alpha'])
        s = alpha / math.sqrt(r) if cfg.get('use_rslora') else alpha / r
        (o, i), w = W[mod + '.weight']
        w = list(w)
        rr = A[0][0]
        assert rr == r
        a, b = A[1], B[1]
        for row in range(o):
            for col in range(i):
                if emb:   # W[V, C] += s * sum_k B[col, k] A[k, row]
                    d = sum(b[col * rr + q] * a[q * o + row] for q in range(rr))
                else:     # W[out, in] += s * sum_k B[row, k] A[k, col]
                    d = sum(b[row * rr + q] * a[q * i + col] for q in range(rr))
                w[row * i + col] += s * d
        W[mod + '.weight'] = ([o, i], w)
    write_st(out, W, {'config': open(base + '/config.json').read()})


def compare(a, b, tol):
    A, _ = read_st(a)
    B, _ = read_st(b)
    assert sorted(A) == sorted(B), set(A) ^ set(B)
    worst = (0, '')
    for k in A:
        assert A[k][0] == B[k][0], (k, A[k][0], B[k][0])
        d = max((abs(x - y) / max(1.0, abs(y)) for x, y in zip(A[k][1], B[k][1])), default=0)
        worst = max(worst, (d, k))
    print('worst', worst)
    assert worst[0] <= tol, worst


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'make':
        a = sys.argv[2:]
        make(a[0], a[1], '--rslora' in a, '--patterns' in a, '--embed' in a,
             a[a.index('--save-module') + 1] if '--save-module' in a else None,
             int(a[a.index('--rank') + 1]) if '--rank' in a else 4)
    elif cmd == 'merge':
        merge(*sys.argv[2:5])
    elif cmd == 'compare':
        compare(sys.argv[2], sys.argv[3], float(sys.argv[4]))
