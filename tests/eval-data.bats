#!/usr/bin/env bats
# tools/lop-get-eval-data: rows shaped like the Hugging Face datasets the harness loads become the
# files lm-eval reads, and lm-eval then builds exactly the harness's (context, continuation) pairs.
load helpers

GET="$BATS_TEST_DIRNAME/../tools/lop-get-eval-data"

setup() {
  [ -x "$BIN/lm-eval" ] || skip "lm-eval not built"
}

# Two rows of each dataset, with the fields and types the hub's datasets have.
samples() {
  python3 - "$1" <<'EOF'
import json, os, sys
S = sys.argv[1]
def put(name, split, rows):
    os.makedirs(os.path.join(S, name), exist_ok=True)
    with open(os.path.join(S, name, split + '.jsonl'), 'w') as f:
        for r in rows: f.write(json.dumps(r) + '\n')
put('Rowan__hellaswag', 'validation', [
    {'ind': 24, 'activity_label': 'Roof shingle removal', 'ctx_a': 'A man is sitting on a roof.', 'ctx_b': 'he',
     'ctx': 'A man is sitting on a roof. he', 'endings': ['is using wrap to wrap a pair of skis.', 'is ripping level tiles off.', "is holding a rubik's cube.", 'starts pulling up roofing on a roof.'],
     'source_id': 'activitynet~v_-JhWjGDPHMY', 'split': 'val', 'split_type': 'indomain', 'label': '3'},
    {'ind': 92, 'activity_label': 'Clean and jerk', 'ctx_a': 'A lady walks to a barbell. She bends down and grabs the pole.', 'ctx_b': 'the lady [title] stands',
     'ctx': '', 'endings': ['swings and lands in her arms.', 'pulls the barbell forward.', 'pulls a rope attached to the barbell.', 'stands and lifts the weight over her head.'],
     'source_id': 'x', 'split': 'val', 'split_type': 'zeroshot', 'label': '3'}])
put('baber__piqa', 'validation', [
    {'goal': "How do I ready a guinea pig cage for it's new occupants?", 'sol1': 'Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips.', 'sol2': 'Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material.', 'label': 0},
    {'goal': 'dresser', 'sol1': 'replace drawer with bobby pin ', 'sol2': 'finish, woodgrain with  bobby pin ', 'label': 1}])
for cfg, q in (('ARC-Easy', 'Which is a mammal?'), ('ARC-Challenge', 'Which is hardest?')):
    put('allenai__ai2_arc__' + cfg, 'test', [
        {'id': 'a1', 'question': q, 'choices': {'text': ['cat', 'trout', 'frog', 'eagle'], 'label': ['A', 'B', 'C', 'D']}, 'answerKey': 'A'},
        {'id': 'a2', 'question': q + ' (2)', 'choices': {'text': ['one', 'two', 'three'], 'label': ['1', '2', '3']}, 'answerKey': '3'}])
put('allenai__openbookqa__main', 'test', [
    {'id': '7-980', 'question_stem': 'The sun is responsible for', 'choices': {'text': ['puppies learning new tricks', 'children growing up and getting old', 'flowers wilting in a vase', 'plants sprouting, blooming and wilting'], 'label': ['A', 'B', 'C', 'D']}, 'answerKey': 'D'},
    {'id': '7-584', 'question_stem': 'When standing miles away from Mount Rushmore', 'choices': {'text': ['the mountains seem very close', 'the mountains are boring', 'the mountains look the same as from up close', 'the mountains seem smaller than in photographs'], 'label': ['A', 'B', 'C', 'D']}, 'answerKey': 'D '}])
put('aps__super_glue__copa', 'validation', [
    {'premise': 'The man turned on the faucet.', 'choice1': 'The toilet filled with water.', 'choice2': 'Water flowed from the spout.', 'question': 'effect', 'idx': 0, 'label': 1},
    {'premise': 'My body cast a shadow over the grass.', 'choice1': 'The sun was rising.', 'choice2': 'The grass was cut.', 'question': 'cause', 'idx': 1, 'label': 0}])
put('aps__super_glue__boolq', 'validation', [
    {'question': 'does ethanol take more energy make that produces', 'passage': 'Ethanol fuel -- All biomass goes through at least some of these steps.', 'idx': 0, 'label': 0},
    {'question': 'is house tax and property tax are same', 'passage': 'Property tax -- Property tax or house tax is a local tax.', 'idx': 1, 'label': 1}])
put('allenai__winogrande__winogrande_xl', 'validation', [
    {'sentence': 'Sarah was a much better surgeon than Maria so _ always got the harder cases.', 'option1': 'Sarah', 'option2': 'Maria', 'answer': '1'},
    {'sentence': 'They were worried the wine would ruin the bed and the blanket, but the _ was not ruined.', 'option1': 'blanket', 'option2': 'bed', 'answer': '2'}])
put('EleutherAI__lambada_openai__default', 'test', [
    {'text': 'In my palm is a clear stone, and inside it is a small ivory statuette. A guardian angel.\n\n"Figured if you are going to be out at night getting hit by cars, you might as well have some backup." I look at him, feeling stunned. Like this is some sort of sign. But as I stare at Harlin, his mouth curved in a confident grin, I do not care about signs'},
    {'text': 'Give me a minute to change and I will meet you at the docks." She was already heading down the hall before I could respond. I made my way to the docks'}])
for split in ('test', 'dev'):
    put('cais__mmlu__anatomy', split, [
        {'question': 'What is the embryological origin of the hyoid bone? ', 'subject': 'anatomy', 'choices': ['The first pharyngeal arch', 'The first and second pharyngeal arches', 'The second pharyngeal arch', 'The second and third pharyngeal arches'], 'answer': 3},
        {'question': 'Which of these branches of the trigeminal nerve contain somatic motor processes?', 'subject': 'anatomy', 'choices': ['The supraorbital nerve', 'The infraorbital nerve', 'The mental nerve', 'None of the above'], 'answer': 3}])
EOF
}

@test "lop-get-eval-data: --help, bad task (2), missing rows (1), no overwrite without -f" {
  run "$GET" --help
  assert_success
  assert_output --partial "lop-get-eval-data"
  T=$(scratch)
  run "$GET" "$T/out" --tasks nosuch --from-jsonl "$T"
  [ "$status" -eq 2 ]; assert_output --partial "nosuch"
  run "$GET" "$T/out" --tasks piqa --from-jsonl "$T/none"
  [ "$status" -eq 1 ]; assert_output --partial "baber__piqa/validation.jsonl"
  samples "$T/s"
  run "$GET" "$T/out" --tasks piqa --from-jsonl "$T/s"
  assert_success
  run "$GET" "$T/out" --tasks piqa --from-jsonl "$T/s"
  [ "$status" -eq 1 ]; assert_output --partial "use -f"
  run "$GET" "$T/out" --tasks piqa --from-jsonl "$T/s" -f
  assert_success
}

@test "lop-get-eval-data: the converted files give lm-eval the harness's exact requests for every task" {
  need_shared
  T=$(scratch)
  samples "$T/s"
  tasks=hellaswag,piqa,arc_easy,arc_challenge,openbookqa,copa,boolq,winogrande,lambada_openai,mmlu_anatomy
  run "$GET" "$T/eval" --tasks $tasks --from-jsonl "$T/s"
  assert_success
  run lm-eval -q -t 1 -m "$MODELS/stories260K" --data-dir "$T/eval" --tasks $tasks --num-fewshot 0 --log-samples "$T/log.jsonl"
  assert_success
  python3 - "$T" <<'EOF'
import json, re, sys
T = sys.argv[1]
rows = lambda n, sp: [json.loads(l) for l in open('%s/s/%s/%s.jsonl' % (T, n, sp))]
def pre(t):  # the harness's hellaswag preprocess
    t = t.strip().replace(' [title]', '. ')
    t = re.sub('\\[.*?\\]', '', t)
    return t.replace('  ', ' ')
want = {}
want['hellaswag'] = [[(pre(r['activity_label'] + ': ' + r['ctx_a'] + ' ' + r['ctx_b'].capitalize()), ' ' + pre(e)) for e in r['endings']] for r in rows('Rowan__hellaswag', 'validation')]
want['piqa'] = [[('Question: ' + r['goal'] + '\nAnswer:', ' ' + s) for s in (r['sol1'], r['sol2'])] for r in rows('baber__piqa', 'validation')]
for t, c in (('arc_easy', 'ARC-Easy'), ('arc_challenge', 'ARC-Challenge')):
    want[t] = [[('Question: ' + r['question'] + '\nAnswer:', ' ' + x) for x in r['choices']['text']] for r in rows('allenai__ai2_arc__' + c, 'test')]
want['openbookqa'] = [[(r['question_stem'], ' ' + x) for x in r['choices']['text']] for r in rows('allenai__openbookqa__main', 'test')]
def copa_text(d):
    return d['premise'].strip()[:-1] + ' ' + {'cause': 'because', 'effect': 'therefore'}[d['question']]
want['copa'] = [[(copa_text(r), ' ' + ' ' + c[0].lower() + c[1:]) for c in (r['choice1'], r['choice2'])] for r in rows('aps__super_glue__copa', 'validation')]
want['boolq'] = [[(r['passage'] + '\nQuestion: ' + r['question'] + '?\nAnswer:', ' ' + c) for c in ('no', 'yes')] for r in rows('aps__super_glue__boolq', 'validation')]
def wino(r):
    i = r['sentence'].index('_')
    return [(r['sentence'][:i] + o, ' ' + r['sentence'][i + 1:].strip()) for o in (r['option1'], r['option2'])]
want['winogrande'] = [wino(r) for r in rows('allenai__winogrande__winogrande_xl', 'validation')]
want['lambada_openai'] = [[(' '.join(r['text'].split(' ')[:-1]), ' ' + r['text'].split(' ')[-1])] for r in rows('EleutherAI__lambada_openai__default', 'test')]
def mm(r):
    q = r['question'].strip() + ''.join('\n%s. %s' % (l, c) for l, c in zip('ABCD', r['choices'])) + '\nAnswer:'
    return [('The following are multiple choice questions (with answers) about anatomy.\n\n' + q, ' ' + l) for l in 'ABCD']
want['mmlu_anatomy'] = [mm(r) for r in rows('cais__mmlu__anatomy', 'test')]
gold = {'hellaswag': [3, 3], 'piqa': [0, 1], 'arc_easy': [0, 2], 'arc_challenge': [0, 2], 'openbookqa': [3, 3],
        'copa': [1, 0], 'boolq': [0, 1], 'winogrande': [0, 1], 'mmlu_anatomy': [3, 3]}
got = {}
for l in open(T + '/log.jsonl'):
    s = json.loads(l)
    got.setdefault(s['task'], []).append(s)
assert sorted(got) == sorted(want), sorted(got)
for t in want:
    assert len(got[t]) == len(want[t]), (t, len(got[t]))
    for s, w in zip(got[t], want[t]):
        args = [tuple(a) for a in s['arguments']]
        assert args == w, (t, args, w)
        if t in gold:
            assert s['target'] == gold[t][s['doc_id']], (t, s['target'])
print('ok')
EOF
}

@test "lm-eval: the default data folder is \$LOP_EVAL_DATA or ~/.local/share/lop/eval, and a missing one names lop-get-eval-data" {
  need_shared
  T=$(scratch)
  run env -u LOP_EVAL_DATA HOME="$T/home" XDG_DATA_HOME= lm-eval -q -m "$MODELS/stories260K" --tasks copa
  [ "$status" -eq 1 ]
  assert_output --partial "$T/home/.local/share/lop/eval"
  assert_output --partial "lop-get-eval-data"
  samples "$T/s"
  "$GET" "$T/home/.local/share/lop/eval" --tasks copa --from-jsonl "$T/s"
  run env -u LOP_EVAL_DATA HOME="$T/home" XDG_DATA_HOME= lm-eval -q -t 1 -m "$MODELS/stories260K" --tasks copa
  assert_success
  assert_output --partial '"n":2'
  run env LOP_EVAL_DATA="$T/home/.local/share/lop/eval" lm-eval -q -t 1 -m "$MODELS/stories260K" --tasks copa
  assert_success
}
