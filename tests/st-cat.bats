#!/usr/bin/env bats
# st-cat: listing, summary, round trips (stream, file, folder shards, zstd), dtype conversion,
# select/exclude, stats, and sanitizer runs. Reference values come from tests/lib/st.py, an
# independent python reader.
load helpers

setup() { T=$(scratch); export PYTHONPATH="$ROOT/tests/lib"; }
teardown() { rm -rf "$T"; }

@test "st-cat --help lists every option and exits 0; --version" {
  run st-cat --help
  assert_success
  for o in --list --summary --stats --dtype --select --exclude --zstd --max-shard-size --output --threads --quiet; do
    assert_output --partial -- "$o"
  done
  run st-cat --version
  assert_success
  assert_output --partial "st-cat"
}

@test "st-cat: bad options are usage errors (exit 2)" {
  run st-cat --dtype f8 x
  assert_failure 2
  run st-cat --select '(' x
  assert_failure 2
  run st-cat --bogus
  assert_failure 2
}

@test "st-cat -l matches an independent reader on every model" {
  need_shared
  for m in qwen3-tiny gemma3-tiny llama-tiny stories260K; do
    st-cat -l "$MODELS/$m" > "$T/l.jsonl"
    python3 - "$MODELS/$m/model.safetensors" "$T/l.jsonl" <<'PY'
import sys, json, st
h, _, _, _ = st.load(sys.argv[1])
lines = [json.loads(l) for l in open(sys.argv[2])]
size = {'F32': 4, 'BF16': 2, 'F16': 2, 'F64': 8}
order = sorted(h, key=lambda k: h[k]['data_offsets'][0])
assert [l['name'] for l in lines] == order, "order"
for l in lines:
    v = h[l['name']]; n = 1
    for d in v['shape']: n *= d
    assert l['dtype'] == v['dtype'] and l['shape'] == v['shape'] and l['params'] == n, l
    assert l['bytes'] == n * size[v['dtype']] == v['data_offsets'][1] - v['data_offsets'][0], l
PY
  done
}

@test "st-cat --summary counts params, bytes, layers (and per layer with a config)" {
  need_shared
  for m in qwen3-tiny gemma3-tiny llama-tiny stories260K; do
    run st-cat --summary "$MODELS/$m"
    assert_success
    python3 - "$MODELS/$m" "$output" <<'PY'
import sys, json, st, re
d = sys.argv[1]; s = json.loads(sys.argv[2])
h, _, data, _ = st.load(d + '/model.safetensors')
cfg = json.load(open(d + '/config.json'))
params = sum(eval('*'.join(map(str, v['shape'])) or '1') for v in h.values())
assert s['tensors'] == len(h) and s['params'] == params and s['bytes'] == len(data), s
assert s['layers'] == cfg['num_hidden_layers'], s
per = [0] * cfg['num_hidden_layers']
for k, v in h.items():
    m = re.search(r'layers\.(\d+)\.', k)
    if m: per[int(m.group(1))] += eval('*'.join(map(str, v['shape'])))
assert s['per_layer'] == per, (s['per_layer'], per)
assert s['config_params'] == params, "config count equals the checkpoint's"
emb = cfg['vocab_size'] * cfg['hidden_size']
head = 0 if cfg.get('tie_word_embeddings') else emb
assert s['embed_params'] == emb and s['head_params'] == head
assert abs(s['embed_head_share'] - (emb + head) / params) < 1e-12
PY
  done
}

@test "st-cat: file -> stream -> file keeps every tensor byte-identical, config rides in __metadata__" {
  need_shared
  st-cat "$MODELS/qwen3-tiny" | st-cat -o "$T/a.safetensors"
  python3 - "$MODELS/qwen3-tiny" "$T/a.safetensors" <<'PY'
import sys, json, st
a = st.tensors(sys.argv[1] + '/model.safetensors'); b = st.tensors(sys.argv[2])
assert a == b, "tensors differ"
h, meta, _, n = st.load(sys.argv[2])
assert (8 + n) % 8 == 0, "data not 8-aligned"
assert meta['format'] == 'pt'
assert json.loads(meta['config']) == json.load(open(sys.argv[1] + '/config.json'))
import os; assert meta['source'] == os.path.realpath(sys.argv[1])
PY
  # the stream keeps config and source: a folder written from it gets config + tokenizer files
  st-cat "$T/a.safetensors" | st-cat -o "$T/dir"
  cmp "$MODELS/qwen3-tiny/tokenizer.json" "$T/dir/tokenizer.json"
  python3 -c "import json,sys; assert json.load(open('$T/dir/config.json')) == json.load(open('$MODELS/qwen3-tiny/config.json'))"
}

@test "st-cat: folder output with shards (transformers names, index) reads back identically" {
  need_shared
  st-cat --max-shard-size 200K "$MODELS/stories260K" -o "$T/out"
  [ -f "$T/out/model.safetensors.index.json" ]
  [ -f "$T/out/tokenizer_config.json" ]
  python3 - "$MODELS/stories260K" "$T/out" <<'PY'
import sys, json, os, st
a = st.folder(sys.argv[1]); b = st.folder(sys.argv[2])
assert a == b
# transformers' rule: a new shard when the next tensor would pass the limit
h, _, _, _ = st.load(sys.argv[1] + '/model.safetensors')
shards, cur = 1, 0
for k in sorted(h, key=lambda k: h[k]['data_offsets'][0]):
    n = h[k]['data_offsets'][1] - h[k]['data_offsets'][0]
    if cur and cur + n > 200 * 1024: shards, cur = shards + 1, 0
    cur += n
names = sorted(f for f in os.listdir(sys.argv[2]) if f.endswith('.safetensors'))
assert shards > 2 and names == ['model-%05d-of-%05d.safetensors' % (i + 1, shards) for i in range(shards)], names
idx = json.load(open(sys.argv[2] + '/model.safetensors.index.json'))
assert idx['metadata']['total_size'] == sum(len(v[2]) for v in a.values())
assert set(idx['weight_map']) == set(a)
for f in names:   # each shard's data starts 8-aligned
    assert (8 + st.load(sys.argv[2] + '/' + f)[3]) % 8 == 0
PY
  # and st-cat reads the sharded folder back to the same stream
  st-cat -l "$T/out" > "$T/l2"; st-cat -l "$MODELS/stories260K" > "$T/l1"
  cmp "$T/l1" "$T/l2"
  # no temporaries left behind
  run bash -c "ls -A '$T' | grep -c tmp"
  assert_output "0"
}

@test "st-cat: replacing an output folder is atomic and refuses a folder with foreign files" {
  need_shared
  st-cat "$MODELS/stories260K" -o "$T/m"
  st-cat --select 'embed' "$MODELS/stories260K" -o "$T/m"
  run st-cat --summary "$T/m"
  assert_output --partial '"tensors":1,'
  echo hello > "$T/m/notes.txt"
  run st-cat "$MODELS/stories260K" -o "$T/m"
  assert_failure 1
  assert_output --partial "refusing"
  [ -f "$T/m/notes.txt" ]
}

@test "st-cat --zstd: stream and file round trip; .zst read from a pipe" {
  need_shared
  st-cat --zstd=5 "$MODELS/llama-tiny" > "$T/s.zst"
  head -c 4 "$T/s.zst" | od -An -tx1 | grep -q "28 b5 2f fd"
  st-cat "$MODELS/llama-tiny" -o "$T/f.safetensors.zst"
  cat "$T/s.zst" | st-cat -o "$T/back.safetensors"
  st-cat "$T/f.safetensors.zst" -o "$T/back2.safetensors"
  python3 - "$MODELS/llama-tiny/model.safetensors" "$T/back.safetensors" "$T/back2.safetensors" <<'PY'
import sys, st
a = st.tensors(sys.argv[1])
assert a == st.tensors(sys.argv[2]) == st.tensors(sys.argv[3])
PY
}

@test "st-cat --dtype: bf16->f32 exact, f32->bf16/f16 round to nearest even (checked in python)" {
  need_shared
  st-cat --dtype f32 "$MODELS/qwen3-tiny" -o "$T/f32.safetensors"
  st-cat --dtype bf16 "$MODELS/stories260K" -o "$T/bf16.safetensors"
  st-cat --dtype f16 "$MODELS/stories260K" | st-cat -o "$T/f16.safetensors"
  python3 - "$MODELS" "$T" <<'PY'
import sys, struct, st
M, T = sys.argv[1:]
a = st.tensors(M + '/qwen3-tiny/model.safetensors'); b = st.tensors(T + '/f32.safetensors')
for k, (dt, sh, by) in a.items():
    n = len(by) // 2
    want = b''.join(struct.pack('<I', x << 16) for x in struct.unpack('<%dH' % n, by))
    assert b[k][0] == 'F32' and b[k][2] == want, k
def bf16(x):                      # round to nearest even on the f32 bit pattern
    u = struct.unpack('<I', struct.pack('<f', x))[0]
    if (u & 0x7fffffff) > 0x7f800000: return (u >> 16) | 0x40
    lo, rem = u >> 16, u & 0xffff
    return lo + (rem > 0x8000 or (rem == 0x8000 and lo & 1))
src = st.tensors(M + '/stories260K/model.safetensors')
c = st.tensors(T + '/bf16.safetensors'); h = st.tensors(T + '/f16.safetensors')
for k, (dt, sh, by) in src.items():
    xs = struct.unpack('<%df' % (len(by) // 4), by)
    assert c[k][0] == 'BF16' and struct.unpack('<%dH' % len(xs), c[k][2]) == tuple(bf16(x) for x in xs), k
    assert h[k][0] == 'F16' and h[k][2] == struct.pack('<%de' % len(xs), *xs), k   # struct 'e' rounds half-even
PY
}

@test "st-cat --select/--exclude and concatenation of several inputs" {
  need_shared
  st-cat --select 'layers\.[01]\.' --exclude 'mlp' "$MODELS/llama-tiny" -o "$T/a.safetensors"
  st-cat --exclude 'layers\.[01]\.' "$MODELS/llama-tiny" -o "$T/b.safetensors"
  run st-cat -l "$T/a.safetensors"
  refute_output --partial "mlp"
  refute_output --partial "layers.2."
  st-cat --select 'mlp' --select 'layers\.[01]\.' "$MODELS/llama-tiny" > /dev/null
  st-cat --select 'layers\.[01]\..*mlp' "$MODELS/llama-tiny" -o "$T/c.safetensors"
  st-cat "$T/a.safetensors" "$T/b.safetensors" "$T/c.safetensors" -o "$T/all.safetensors"
  python3 - "$MODELS/llama-tiny/model.safetensors" "$T/all.safetensors" <<'PY'
import sys, st
assert st.tensors(sys.argv[1]) == st.tensors(sys.argv[2])
PY
  run st-cat "$T/a.safetensors" "$T/a.safetensors"
  assert_failure 1
  assert_output --partial "two inputs"
}

@test "st-cat --stats matches python statistics" {
  need_shared
  st-cat --stats "$MODELS/stories260K" > "$T/s.jsonl"
  python3 - "$MODELS/stories260K/model.safetensors" "$T/s.jsonl" <<'PY'
import sys, json, struct, math, st
t = st.tensors(sys.argv[1])
for l in map(json.loads, open(sys.argv[2])):
    xs = struct.unpack('<%df' % (len(t[l['name']][2]) // 4), t[l['name']][2])
    n = len(xs); m = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - m) ** 2 for x in xs) / n)
    assert abs(l['mean'] - m) <= 1e-9 * max(1, abs(m)) + 1e-12, (l, m)
    assert abs(l['std'] - sd) <= 1e-7 * sd + 1e-12, (l, sd)
    # cJSON prints 15 significant digits when they read back within its epsilon
    assert abs(l['min'] - min(xs)) <= 1e-14 * abs(min(xs)) and abs(l['max'] - max(xs)) <= 1e-14 * abs(max(xs))
    assert l['zeros'] == sum(x == 0 for x in xs) and l['sparsity'] == sum(x == 0 for x in xs) / n and l['nan'] == 0 and l['inf'] == 0
PY
}

@test "st-cat: a missing input is one error line, exit 1" {
  run st-cat "$T/missing.safetensors"
  assert_failure 1
  [ "${#lines[@]}" -eq 1 ]
  assert_output --regexp "^st-cat: .*missing.safetensors"
}

@test "st-cat under ASan+UBSan: list, stream round trip, folder, zstd" {
  need_shared
  need_san st-cat
  S="$SANBIN/st-cat"
  run "$S" --summary "$MODELS/gemma3-tiny"; assert_success
  "$S" "$MODELS/qwen3-tiny" | "$S" --dtype f16 | "$S" --zstd -o "$T/x.safetensors.zst"
  "$S" --max-shard-size 3M "$T/x.safetensors.zst" -o "$T/d"
  run "$S" --stats "$T/d"; assert_success
  run "$S" -l "$T/d"; assert_success
}

@test "st-cat: memory stays bounded by the largest tensor (64 MiB model of 4 MiB tensors)" {
  [ -x /usr/bin/time ] || skip "/usr/bin/time absent"
  python3 - "$T/big.safetensors" <<'PY'
import json, struct, os, sys
n, size = 16, 4 << 20
h = {"t%d" % i: {"dtype": "F32", "shape": [1 << 20], "data_offsets": [i * size, (i + 1) * size]} for i in range(n)}
b = json.dumps(h).encode(); b += b' ' * ((8 - (8 + len(b)) % 8) % 8)
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<Q', len(b)) + b)
    for i in range(n): f.write(os.urandom(size))
PY
  F="$T/big.safetensors"
  # through a pipe: writing to /dev/null would not even touch the mapped pages
  rss() { { /usr/bin/time -f "%M" "$@" | cat > /dev/null; } 2>&1 | tail -1; }
  base=$(rss st-cat --summary "$F")
  limit=$((base + 3 * 4096))   # KiB: the tool itself + 3 tensors' worth
  for args in "$F" "--dtype bf16 $F" "--zstd $F" "--stats $F -o $T/o.safetensors"; do
    r=$(rss st-cat $args)
    [ "$r" -lt "$limit" ] || { echo "st-cat $args: peak RSS $r KiB > $limit KiB"; return 1; }
  done
  r=$( { cat "$F" | /usr/bin/time -f "%M" st-cat --dtype f16 > /dev/null; } 2>&1 | tail -1)
  [ "$r" -lt "$limit" ] || { echo "stream: peak RSS $r KiB > $limit KiB"; return 1; }
  st-cat --zstd "$F" > "$T/big.zst"
  r=$( { cat "$T/big.zst" | /usr/bin/time -f "%M" st-cat > /dev/null; } 2>&1 | tail -1)
  [ "$r" -lt "$limit" ] || { echo "zstd stream: peak RSS $r KiB > $limit KiB"; return 1; }
}
