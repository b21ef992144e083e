#!/usr/bin/env python3
"""Structural checks of the lop tree (run by tests/structure.bats). Each prints what it found and
exits 1 when the tree breaks the rule:

  names    HF tensor names ("self_attn.q_proj", "input_layernorm", ...) are spelled only in the
           architecture table, libcommon/arch.c
  readers  one safetensors header parser (st_header.c), one zstd decoder of inputs (st_src.c,
           which textio.c's text reader uses; kd_cache.c decodes its own blocks) and one "is this
           zstd" rule (the magic number ST_ZSTD_MAGIC of st_internal.h): no other file calls a
           zstd decoder, spells the magic number, parses a safetensors header or decides by a
           ".zst" file name
  cycles   no call circle between libcommon's objects (nm of BUILD/libcommon/*.o: who uses a
           symbol another defines) and no include circle among the headers of libcommon and cmd

  kernels  the layer kernels (attention, GLU, RMSNorm, rope application and their backwards) are
           called only by the backend (libcommon/backend_cpu*.c; the CUDA backend has its own in
           libcommon/cuda/): the model core (model_forward.c) and the trainer (train_step.c) reach
           them through lop_backend_ops, the tools never (nm of BUILD/libcommon/*.o, and the
           sources of cmd/)

usage: check-structure.py ROOT CHECK [BUILD]
"""
import glob
import os
import re
import subprocess
import sys


def strip_comments(src):
    """C source without comments (string literals kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == '\\' else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith('/*', i):
            j = src.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append('\n' * src.count('\n', i, j))
            i = j
        elif src.startswith('//', i):
            j = src.find('\n', i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def c_files(root, dirs=('libcommon', 'cmd')):
    for d in dirs:
        for p in sorted(glob.glob(os.path.join(root, d, '**', '*.[ch]'), recursive=True)):
            yield p, os.path.relpath(p, root)


STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def literals(path):
    src = strip_comments(open(path, encoding='utf-8', errors='replace').read())
    for ln, line in enumerate(src.split('\n'), 1):
        for m in STRING.finditer(line):
            yield ln, m.group(0)


HF_NAME = re.compile(r"self_attn|\bmlp\.|_proj\b|layernorm|embed_tokens|lm_head\.|[qk]_norm|\bnorm\.weight")


def check_names(root):
    bad = []
    for p, rel in c_files(root):
        if rel == 'libcommon/arch.c':
            continue
        # KNOWN EXCEPTION, to remove: width-prune arrived in the same session as the table and
        # keeps its own slicing rules (libcommon/width.c's RULES, cmd/width-prune's stream and
        # messages); moving them into arch.c (a "how each tensor slices" column) is open work.
        if rel == 'libcommon/width.c' or rel.startswith('cmd/width-prune/'):
            continue
        for ln, lit in literals(p):
            if HF_NAME.search(lit):
                bad.append(f'{rel}:{ln}: {lit}')
    for b in bad:
        print(f'HF tensor name outside libcommon/arch.c: {b}')
    return not bad


READER_RULES = [
    # (what, regex over comment-free source, files allowed)
    ('a zstd decoder', re.compile(r'\bZSTD_(decompress\w*|createDStream|createDCtx|initDStream)\b'),
     {'libcommon/st_src.c', 'libcommon/kd_cache.c'}),
    ('a safetensors header parser ("data_offsets", "__metadata__" keys)', re.compile(r'"(data_offsets|__metadata__)"'),
     {'libcommon/st_header.c'}),
    ('a ".zst" file-name rule', re.compile(r'"\.zst"'),
     {'libcommon/st_write.c',     # output: a file named *.zst is written compressed
      'cmd/common/outpath.c',     # output: a path named *.zst is a file, not a folder
      'cmd/common/outsource.c',   # output: the same rule for the source-usability check
      'libcommon/task_text.c',    # a data folder may hold FILE.zst only (the bytes still decide)
      'libcommon/calib.c'}),      # "x.jsonl.zst" is JSON lines (the bytes still decide zstd)
    ('zstd\'s magic number', re.compile(r'0x[fF][dD]2[fF][bB]528|0x28[bB]52[fF][dD]|\\x28\\xb5\\x2f\\xfd', re.I),
     {'libcommon/st_internal.h'}),
]


def check_readers(root):
    bad = []
    for p, rel in c_files(root):
        src = strip_comments(open(p, encoding='utf-8', errors='replace').read())
        for what, rx, allowed in READER_RULES:
            if rel in allowed:
                continue
            for m in rx.finditer(src):
                ln = src.count('\n', 0, m.start()) + 1
                bad.append(f'{rel}:{ln}: {what} ({m.group(0)}) outside {", ".join(sorted(allowed))}')
    for b in bad:
        print(b)
    return not bad


def sccs(g):
    idx, low, st, on, res, cnt = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        idx[v] = low[v] = cnt[0]
        cnt[0] += 1
        st.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in idx:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                res.append(sorted(comp))

    for v in sorted(g):
        if v not in idx:
            visit(v)
    return res


def object_graph(objs):
    defs, undef = {}, {}
    for o in objs:
        name = os.path.basename(o)[:-2]
        out = subprocess.run(['nm', '-P', o], capture_output=True, text=True, check=True).stdout
        undef[name] = set()
        for line in out.splitlines():
            f = line.split()
            if len(f) < 2:
                continue
            if f[1] in ('T', 'D', 'B', 'R', 'C', 'W', 'V'):
                defs.setdefault(f[0], name)
            elif f[1] == 'U':
                undef[name].add(f[0])
    return {n: {defs[u] for u in us if u in defs and defs[u] != n} for n, us in undef.items()}


def include_graph(root):
    g = {}
    for p, rel in c_files(root):
        if not rel.endswith('.h'):
            continue
        src = strip_comments(open(p, encoding='utf-8', errors='replace').read())
        g[rel] = set()
        for inc in re.findall(r'#\s*include\s+"([^"]+)"', src):
            for cand in (os.path.join(os.path.dirname(rel), inc), os.path.join('libcommon', inc),
                         os.path.join('cmd/common', inc)):
                if os.path.exists(os.path.join(root, cand)):
                    g[rel].add(os.path.normpath(cand))
                    break
    return g


# Known circles, each with the reason it is still there; any other circle fails.
KNOWN_CYCLES = {
    ('st_adapter', 'st_read'): 'st_reader_open opens a folder with st_open, which may be a PEFT adapter '
                               '(st_adapter.c) built on st_read.c; to go when the stream reader moves '
                               'to its own file',
}


def check_cycles(root, build):
    ok = True
    objs = sorted(glob.glob(os.path.join(build, 'libcommon', '*.o')))
    if not objs:
        print(f'no objects in {build}/libcommon (build first)')
        return False
    for comp in sccs(object_graph(objs)):
        why = KNOWN_CYCLES.get(tuple(comp))
        if why:
            print('known call circle ' + ' <-> '.join(comp) + ': ' + why)
            continue
        print('call circle among libcommon objects: ' + ' <-> '.join(comp))
        ok = False
    for comp in sccs(include_graph(root)):
        print('include circle: ' + ' <-> '.join(comp))
        ok = False
    return ok


# The layer kernels (nn.h, grad.h) and who may call them: the CPU backend. Their own files
# (nn_*.c, grad_*.c) define them.
LAYER_KERNELS = {
    'attention_forward', 'attention_forward_batch', 'glu_forward', 'rmsnorm_forward',
    'rope_forward', 'rope_inverse', 'rope_apply', 'rope_apply_inverse', 'rope_table',
    'tr_attention_backward', 'tr_glu_backward', 'tr_rmsnorm_backward',
}
KERNEL_CALLERS = {'backend_cpu', 'backend_cpu_train'}


def check_kernels(root, build):
    bad = []
    objs = sorted(glob.glob(os.path.join(build, 'libcommon', '*.o')))
    if not objs:
        print(f'no objects in {build}/libcommon (build first)')
        return False
    for o in objs:
        name = os.path.basename(o)[:-2]
        if name in KERNEL_CALLERS or name.startswith(('nn_', 'grad_')):
            continue
        out = subprocess.run(['nm', '-P', o], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 2 and f[1] == 'U' and f[0] in LAYER_KERNELS:
                bad.append(f'libcommon/{name}.c calls the layer kernel {f[0]} (only the backend may: '
                           f'{", ".join(sorted(KERNEL_CALLERS))})')
    call = re.compile(r'\b(' + '|'.join(sorted(LAYER_KERNELS)) + r')\s*\(')
    for p, rel in c_files(root, ('cmd',)):
        src = strip_comments(open(p, encoding='utf-8', errors='replace').read())
        for m in call.finditer(src):
            ln = src.count('\n', 0, m.start()) + 1
            bad.append(f'{rel}:{ln}: a tool calls the layer kernel {m.group(1)} (tools use the model core)')
    for b in bad:
        print(b)
    return not bad


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    root, what = sys.argv[1], sys.argv[2]
    build = sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, 'build')
    if what == 'names':
        ok = check_names(root)
    elif what == 'readers':
        ok = check_readers(root)
    elif what == 'cycles':
        ok = check_cycles(root, build)
    elif what == 'kernels':
        ok = check_kernels(root, build)
    else:
        print(__doc__)
        return 2
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
