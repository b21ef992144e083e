#!/usr/bin/env python3
"""Hand-made hostile seeds for the fuzz targets (committed under tests/fuzz/seeds/<target>/;
re-run this to regenerate them): deep JSON nesting, huge numbers, NaN, duplicate keys, regexes
that backtrack catastrophically, 2^31-length claims, truncated zstd frames.
usage: gen_hostile.py [OUTDIR]   (default: tests/fuzz/seeds)"""
import json, os, struct, subprocess, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
SEP = b"\n--lopfuzz--\n"


def w(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "h-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True, check=True).stdout


deep = "[" * 5000 + "]" * 5000
deep_obj = '{"a":' * 3000 + "1" + "}" * 3000
LLAMA = {"model_type": "llama", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1}

# ---- config.json
w("config", "deep", deep_obj)
w("config", "deep-arr", '{"model_type":"llama","layer_types":' + deep + "}")
w("config", "nan", json.dumps(LLAMA)[:-1] + ', "rms_norm_eps": NaN}')
w("config", "huge-num", json.dumps(LLAMA)[:-1] + ', "rope_theta": 1e400, "max_position_embeddings": 1e300}')
w("config", "int-2e31", json.dumps(dict(LLAMA, vocab_size=2**31, hidden_size=2**31)))
w("config", "overflow", json.dumps(dict(LLAMA, vocab_size=2**30, hidden_size=2**20, intermediate_size=2**30,
                                         num_hidden_layers=2**16, num_attention_heads=2**16, head_dim=2**16)))
w("config", "dup-keys", '{"model_type":"llama","num_hidden_layers":2,"num_hidden_layers":40,"vocab_size":32,'
  '"hidden_size":16,"intermediate_size":32,"num_attention_heads":2}')
w("config", "neg", json.dumps(dict(LLAMA, num_hidden_layers=-1)))
w("config", "types-len", json.dumps(dict(LLAMA, layer_types=["full_attention"] * 3)))
w("config", "rope-zero", json.dumps(dict(LLAMA, rope_scaling={"rope_type": "llama3", "factor": 0})))
w("config", "gemma-mm", json.dumps({"model_type": "gemma3", "text_config": {"hidden_size": 8, "num_hidden_layers": 3,
                                    "sliding_window_pattern": 2}, "tie_word_embeddings": False}))
w("config", "qwen-window", json.dumps({"model_type": "qwen2", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
                                       "num_hidden_layers": 5, "num_attention_heads": 2, "use_sliding_window": True,
                                       "sliding_window": 4, "max_window_layers": 2}))

# ---- tokenizer.json
def tok(pre=None, norm=None, dec=None, vocab=None, merges=None, added=None, model=None):
    v = vocab or {"a": 0, "b": 1, "ab": 2, "<s>": 3}
    m = model or {"type": "BPE", "vocab": v, "merges": merges if merges is not None else ["a b"], "byte_fallback": False,
                  "unk_token": None}
    return json.dumps({"version": "1.0", "added_tokens": added or [], "normalizer": norm, "pre_tokenizer": pre,
                       "post_processor": None, "decoder": dec, "model": m}).encode()

catastrophic = {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False}
w("tok_json", "regex-backtrack", tok(pre=catastrophic) + SEP + SEP + b"a" * 5000 + b"b")
w("tok_json", "regex-nested", tok(pre={"type": "Split", "pattern": {"Regex": "((a|aa)+)+b"}, "behavior": "Removed",
                                      "invert": True}) + SEP + SEP + b"a" * 3000)
w("tok_json", "regex-replace", tok(norm={"type": "Replace", "pattern": {"Regex": "(x+x+)+y"}, "content": "z"}) + SEP + SEP + b"x" * 4000)
w("tok_json", "regex-bad", tok(pre={"type": "Split", "pattern": {"Regex": "(?<=a+)b\\"}, "behavior": "Isolated", "invert": False}))
w("tok_json", "regex-empty", tok(pre={"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated", "invert": False}) + SEP + SEP + b"abab")
w("tok_json", "deep", b'{"model":' + deep.encode() + b"}")
w("tok_json", "deep-obj", deep_obj.encode())
w("tok_json", "huge-id", tok(vocab={"a": 0, "b": 2**31 - 1}, merges=[]))
w("tok_json", "id-2e31", tok(vocab={"a": 0, "b": 2**31}, merges=[]))
w("tok_json", "neg-id", tok(vocab={"a": -1, "b": 1}, merges=[]))
w("tok_json", "nan-id", tok(vocab={"a": 0}, merges=[]).replace(b'"a": 0', b'"a": NaN'))
w("tok_json", "float-id", tok(vocab={"a": 0.5, "b": 1e300}, merges=[]))
w("tok_json", "dup-vocab", tok(merges=[]).replace(b'"ab": 2', b'"a": 2, "a": 5'))
w("tok_json", "merge-missing", tok(merges=["a c", "ab ab", "x"]))
w("tok_json", "merge-list", tok(merges=[["a", "b"], ["a"], [1, 2], "a  b"]))
w("tok_json", "added-empty", tok(added=[{"id": 4, "content": "", "special": True}, {"id": 2**31, "content": "x"},
                                        {"id": 0, "content": "a", "lstrip": True, "rstrip": True, "single_word": True,
                                         "normalized": True}]) + SEP + SEP + b" a a  a")
w("tok_json", "bytefallback", tok(vocab={"<0x41>": 0, "<0xZZ>": 1, "<0x>": 2, "<unk>": 3}, merges=[],
                                  model={"type": "BPE", "vocab": {"<0x41>": 0, "<unk>": 1}, "merges": [], "byte_fallback": True,
                                         "unk_token": "<unk>", "fuse_unk": True}) + SEP + SEP + "A\u00e9\U0001F600".encode())
w("tok_json", "prepend-huge", tok(norm={"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "ab" * 2000},
                                                                            {"type": "Replace", "pattern": {"String": ""}, "content": "a"}]}))
w("tok_json", "seq-deep", tok(pre=json.loads('{"type":"Sequence","pretokenizers":[' * 200 + '{"type":"ByteLevel"}' + "]}" * 200)))
w("tok_json", "cfg-weird", tok() + SEP + b'{"tokenizer_class":"LlamaTokenizer","legacy":false,"add_bos_token":true,'
  b'"bos_token":{"content":"<s>"},"eos_token":["x"],"add_prefix_space":true}' + SEP + b" a b")
w("tok_json", "unigram", json.dumps({"model": {"type": "Unigram", "vocab": [["a", -1.0]]}}).encode())
w("tok_json", "wordpiece", json.dumps({"model": {"type": "WordPiece", "vocab": {"a": 0}}}).encode())

# ---- encode (byte 0: tokenizer, lossy, add_special)
w("tok_encode", "spaces", b"\x00" + b" " * 16000)
w("tok_encode", "newlines", b"\x01" + b"\n \r\n\t" * 3000)
w("tok_encode", "digits", b"\x02" + b"1234567890" * 1500)
w("tok_encode", "invalid", b"\x40" + b"a\xff\xfe\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80b\xe2\x82")
w("tok_encode", "invalid-strict", b"\x03" + b"ok\xc3(\x80x")
w("tok_encode", "overlong-nul", b"\x44" + b"\xc0\x80\x00\x00\xe0\x80\x80")
w("tok_encode", "combining", b"\x01" + ("e" + "\u0301" * 2000).encode())
w("tok_encode", "specials", b"\x84" + b"<s></s><unk><|begin_of_text|><bos><eos><start_of_turn>" * 20)
w("tok_encode", "bom-ctrl", b"\x02" + "\ufeff\u200b\u2028\u2029\x7f\u00a0\u3000\u2581\u2581x".encode())

# ---- training / calibration data (bytes 0-1: options)
w("train_data", "nul", b"\x03\x05text\x00more\n")
w("train_data", "zst-cut", b"\x04\x06" + zstd(b"hello world\n" * 200)[:30])
w("train_data", "zst-claim", b"\x04\x06" + b"\x28\xb5\x2f\xfd\xa4\x00\x00\x00\x80\x00\x00\x00\x00")  # 2^31-byte content claim
w("train_data", "zst-rle-bomb", b"\x04\x06" + zstd(b"a" * (4 << 20)))
w("train_data", "ids-big", b"\x0f\x00" + b'{"ids":[1,2147483648]}\n{"ids":[1,2]}')
w("train_data", "ids-neg", b"\x0f\x00" + b'{"ids":[-1,2,3]}')
w("train_data", "ids-nan", b"\x0f\x00" + b'{"ids":[1,NaN]}\n{"ids":[1.5,2.5]}')
w("train_data", "ids-mixed", b"\x0f\x00" + b'{"ids":[1,2]}\n{"text":"x"}')
w("train_data", "deep", b"\x01\x01" + deep_obj.encode())
w("train_data", "instr-notmpl", b"\x35\x00" + b'{"instruction":"a","response":"b"}')
w("train_data", "instr-braces", b"\x15\x00" + b'{"instruction":"{response}{context}","context":"{prompt}","response":"{response}"}')
w("train_data", "dup-keys", b"\x01\x00" + b'{"text":"a","text":5}\n{"response":1,"response":"x","prompt":"p"}')
w("train_data", "crlf-paras", b"\x02\x44" + b"a b\r\n\r\nc d\n\r\n\r\n\n e \n")
w("train_data", "calib-field", b"\x09\xff" + b'{"content":"the cat"}\n{"content":5}\n{"text":"x"}')

# ---- eval data (byte 0: task | compression | few-shot)
w("eval_data", "hs-short", b"\x00" + b"ctx\n0\na\nb\nc\n")
w("eval_data", "hs-gold", b"\x00" + b"ctx\n7\na\nb\nc\nd\n" + b"x [title] y [header]\n-1\n[a]\n  b  \nc\nd\n")
w("eval_data", "hs-zst-cut", b"\x20" + zstd(b"ctx\n1\na\nb\nc\nd\n" * 50)[:40])
w("eval_data", "mmlu-quote", b"\x02" + b'"unterminated,a,b,c,d,A\n')
w("eval_data", "mmlu-answer", b"\x02" + b"q,a,b,c,d,E\nq,a,b,c,d\nq,a,b,c,d,A,extra\n\"q\"\"x\",\"a\nb\",b,c,d,B\n")
w("eval_data", "mmlu-fewshot", b"\xc2" + b"q,a,b,c,d,A\n" + SEP + b"d1,a,b,c,d,B\n")
w("eval_data", "piqa-labels", b"\x01" + b'{"goal":"g","sol1":"a","sol2":"b"}\n{"goal":"g","sol1":"a","sol2":"b"}' + SEP + b"1\n")
w("eval_data", "piqa-badlabel", b"\x01" + b'{"goal":"g","sol1":"a","sol2":"b"}' + SEP + b"2\n")
w("eval_data", "arc-gold", b"\x03" + b'{"query":"q","choices":["a","b"],"gold":5}\n{"query":"q","choices":[],"gold":0}\n')
w("eval_data", "gold-big", b"\x0b" + b'{"query":"q","choices":["a","b"],"gold":2147483648}\n{"query":"q","choices":["a"],"gold":-1}\n')
w("eval_data", "gold-nan", b"\x0b" + b'{"query":"q","choices":["a","b"],"gold":NaN}\n{"query":"q","choices":["a","b"],"gold":1.5}')
w("eval_data", "multi", b"\x08" + b'{"context_options":["a","b"],"continuation":"c","gold":1}\n{"context_options":[],"continuation":"c","gold":0}')
w("eval_data", "loglik", b"\x09" + b'{"context":"a","continuation":"b"}\n{"context":"","continuation":""}')
w("eval_data", "deep", b"\x0c" + deep_obj.encode())
w("eval_data", "dup-keys", b"\x0b" + b'{"query":"q","choices":["a","b"],"gold":0,"gold":1,"choices":["x"]}')

# ---- model-card logs
w("mc_logs", "deep", deep_obj)
w("mc_logs", "nums", b'{"ppl":NaN}\n{"ppl":1e400,"tokens":1e300}\n{"step":1e20,"loss":-1e308}\n{"layer":2147483648,"metric":"bi","score":1}\n'
  b'{"layer":-5,"metric":"bi","score":1e999}\n{"dropped":[1,2,2147483647,-1]}\n{"task":"t","metric":"acc","value":1e400,"n":1e30}\n')
w("mc_logs", "dup", b'{"ppl":1,"ppl":"x"}\n{"task":"a","task":5,"metric":"acc","value":0.5}\n{"merge":[3,1],"similarity":0.9,"accepted":true}\n'
  b'{"merge":[0,2147483647],"similarity":0.9,"accepted":true}\n{"layers":[5],"similarity":1}\n')
w("mc_logs", "harness", json.dumps({"results": {"t" * 300: {"acc,none": 0.5, "acc_stderr,none": "N/A"}, "x": 5},
                                     "n-samples": {"t": {"effective": 1e20}}}))
w("mc_logs", "wmask", b'{"tensor":"' + b"x" * 500 + b'","sparsity":0.5}\n{"sparsity":2,"name":5}\n{"sparsity":0.5}\n' + SEP +
  b'{"step":1,"loss":2,"lr":1e-3,"tok_s":1e308,"tokens":9e18}\n{"step":2,"loss":1,"eval_loss":-1,"eval_ppl":1e400}')

# ---- kd cache: header claims
def kdc(meta, vocab_len=0, vocab=b"", blocks=(), index=None, trailer=None):
    js = json.dumps(meta).encode()
    b = b"LOPKDC01" + struct.pack("<Q", len(js)) + js + struct.pack("<Q", vocab_len) + vocab
    offs = []
    for blk in blocks:
        offs.append((len(b), len(blk)))
        b += blk
    ioff = len(b)
    for o, s in (index if index is not None else offs):
        b += struct.pack("<QQ", o, s)
    n = len(index if index is not None else offs)
    b += trailer if trailer is not None else struct.pack("<QQ", ioff, n) + b"LOPKDEND"
    return b

M = {"format": "lop-kd-cache", "version": 1, "vocab": 10, "k": 2, "temperature": 1.0}
def rec(T, ns, k, ids, tg, rest=b""):
    return struct.pack("<III", T, ns, k) + struct.pack(f"<{T}i", *ids) + struct.pack(f"<{T}i", *tg) + rest
w("kd_cache", "claim-2e31", kdc(M, blocks=[zstd(b"\0" * 64)], index=[(0, 2**31)]))
w("kd_cache", "vocab-claim", kdc(dict(M, tokenizer_size=2**25), vocab_len=13,
                                 vocab=b"\x28\xb5\x2f\xfd\xa4\x00\x00\x00\x80\x00\x00\x00\x00"))
w("kd_cache", "k-huge", kdc(dict(M, vocab=2**26 - 1, k=2**26 - 1), blocks=[zstd(rec(1, 1, 2**26 - 1, [0], [1]))]))
w("kd_cache", "nan-temp", kdc(M).replace(b'"temperature": 1.0', b'"temperature": NaN'))
w("kd_cache", "dup-keys", kdc(M).replace(b'"k": 2', b'"k": 2, "k": 9'))
w("kd_cache", "blocks-count", kdc(M, trailer=struct.pack("<QQ", 0, 2**62) + b"LOPKDEND"))
w("kd_cache", "block-ok", kdc(M, blocks=[zstd(rec(2, 1, 2, [1, 2], [3, -1], struct.pack("<2I", 1, 2) + b"\0" * 8 + b"\0" * 4))]))
w("kd_cache", "block-cut", kdc(M, blocks=[zstd(rec(2, 1, 2, [1, 2], [3, -1], b"\0" * 20))[:-3]]))

# ---- ppl top-k file

# ---- checkpoints (byte 0: model; state.safetensors FZ_SEP state.json)
def st(tensors, extra=b""):
    h, off, data = {}, 0, b""
    for name, shape, dt, raw in tensors:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw); data += raw
    hb = json.dumps(h).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + data + extra
emb = "model.embed_tokens.weight"
w("ckpt", "wrong-dtype", b"\0" + st([(emb, [128], "BF16", b"\0" * 256)]) + SEP + b'{"step":1}')
w("ckpt", "wrong-size", b"\0" + st([(emb, [127], "F32", b"\0" * 508)]) + SEP + b'{"step":1}')
w("ckpt", "claim-2e31", b"\0" + struct.pack("<Q", 2**31) + b"{}" + SEP + b"{}")
w("ckpt", "no-json", b"\1" + st([]))
w("ckpt", "nan-values", b"\0" + st([(emb, [128], "F32", struct.pack("<f", float("nan")) * 128)]) + SEP + b"NaN")

# ---- config + safetensors header for model-card's parameter count
def sthead(h):
    hb = json.dumps(h).encode()
    return struct.pack("<Q", len(hb)) + hb
w("config", "st-shape-overflow", json.dumps(LLAMA).encode() + SEP +
  sthead({"a": {"dtype": "F32", "shape": [10**15, 10**15], "data_offsets": [0, 0]}}))
w("config", "st-sum-overflow", json.dumps(LLAMA).encode() + SEP +
  sthead({k: {"dtype": "F32", "shape": [10**15, 9000], "data_offsets": [0, 0]} for k in "abc"}))

# ---- safetensors: every defect of tests/gen-malformed.py, and a 2^31-length claim
import tempfile
with tempfile.TemporaryDirectory() as td:
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen-malformed.py"), td],
                   check=True, stdout=subprocess.DEVNULL)
    for f in sorted(os.listdir(td)):
        p = os.path.join(td, f)
        if f != "manifest.tsv" and os.path.isfile(p) and os.path.getsize(p) <= 4096:
            w("st_header", f, open(p, "rb").read())
w("st_header", "len-2e31", struct.pack("<Q", 2**31) + b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}')
w("st_header", "shape-2e31", sthead({"a": {"dtype": "F32", "shape": [2**31, 2**31, 2**31], "data_offsets": [0, 8]}}) + b"\0" * 8)
w("st_header", "deep-meta", sthead({"__metadata__": {"a": "b"}}) [:8] + deep_obj.encode())
