// What check-config and `up` verify before anything starts, through the built CLI: LLaMA-Factory's
// own example configs pass with only the model path changed and refuse keys left unsupported;
// a missing model, a broken tokenizer, a malformed data row, a missing dataset file, an output_dir
// holding a run and a host name that does not resolve are each exit 2 naming the problem and the
// fix; an unsplittable sequence_parallel_size suggests the degrees that work for the model.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const lf = join(root, 'test/config/fixtures/llamafactory');
const check = (args: string[], cwd = root) => runCli(['check-config', ...args], { cwd, timeoutMs: 60_000 });

t.test('LLaMA-Factory\'s example configs (pt, sft, dpo; LoRA and full) pass with only the model path changed', async (t) => {
  const files = ['train_lora', 'train_full'].flatMap((d) => readdirSync(join(lf, 'examples', d)).map((f) => `examples/${d}/${f}`));
  t.ok(files.length >= 7, `${files.length} example files`);
  for (const f of files) {
    const model = join(root, 'examples/models', f.includes('qwen3') ? 'qwen3-mini' : 'llama3-mini');
    const r = check([f, '--model_name_or_path', model], lf);
    t.equal(r.status, 0, `${f}: ${r.stderr}`);
    t.match(r.stdout, /^# data: \w+: .*rows checked, \d+ tokenized$/m, `${f}: its datasets were read and tokenized`);
    t.match(r.stdout, /^# output_dir: .* \((new|empty|.*overwrite_output_dir)\)$/m);
  }
  const sft = check(['examples/train_lora/qwen3_lora_sft.yaml', '--model_name_or_path', join(root, 'examples/models/qwen3-mini')], lf);
  t.match(sft.stdout, /^template: qwen3_nothink$/m);
  t.match(sft.stdout, /^plot_loss: true$/m, 'plot_loss acts');
});

t.test('an LLaMA-Factory config with keys left unsupported exits 2 naming each', async (t) => {
  const dir = t.testdir();
  const text = readFileSync(join(lf, 'examples/train_lora/llama3_lora_sft.yaml'), 'utf8') + 'use_dora: true\nquantization_bit: 4\npref_ftx: 0\n';
  writeFileSync(join(dir, 'job.yaml'), text);
  const r = check([join(dir, 'job.yaml'), '--model_name_or_path', join(root, 'examples/models/llama3-mini')], lf);
  t.equal(r.status, 2, r.stderr);
  t.match(r.stderr, /use_dora: is not supported here: only plain LoRA/);
  t.match(r.stderr, /quantization_bit: is not supported here: quantized \(QLoRA\) training is not supported/);
  t.notMatch(r.stderr, /pref_ftx/, 'pref_ftx 0 (the default) is accepted');
  t.equal(r.stdout, '');
});

t.test('model, tokenizer and heads are checked: the suggestions are the degrees that work', async (t) => {
  const missing = check(['examples/tiny_pt.yaml', '--model_name_or_path', 'no/such/model']);
  t.equal(missing.status, 2);
  t.match(missing.stderr, /model_name_or_path: model_name_or_path no\/such\/model: no config\.json there/);
  // tiny: 8 heads, 4 kv heads; without a hostfile the world follows sequence_parallel_size
  const sp3 = check(['examples/tiny_pt.yaml', '--sequence_parallel_size', '3']);
  t.equal(sp3.status, 2);
  t.match(sp3.stderr, /8 attention heads are not divisible by sequence_parallel_size 3.*use sequence_parallel_size in \{1, 2, 4, 8\}/);
  const up = runCli(['up', 'examples/tiny_pt.yaml', '--sequence_parallel_size', '3', '--output_dir', join(t.testdir(), 'o')], { cwd: root, timeoutMs: 60_000 });
  t.equal(up.status, 2, 'up refuses before anything starts');
  t.match(up.stderr, /\{1, 2, 4, 8\}/, 'up suggests the same degrees (not {1})');
  t.notMatch(up.stdout, /ulysses-actors up: \d+ rank/);
  const dir = t.testdir({ 'config.json': readFileSync(join(root, 'examples/models/tiny/config.json'), 'utf8'), 'tokenizer.json': '{"model": ' });
  const tok = check(['examples/tiny_pt.yaml', '--model_name_or_path', dir]);
  t.equal(tok.status, 2);
  t.match(tok.stderr, /tokenizer\.json: model_name_or_path: the tokenizer cannot be loaded/);
});

t.test('a malformed data row, a missing file and an unknown dataset fail check-config, naming file and row', async (t) => {
  const dir = t.testdir({
    'bad.jsonl': '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n{"instruction": "e", "output": \n',
    'nooutput.json': JSON.stringify([{ instruction: 'a', output: 'b' }, { instruction: 'c' }]),
    'dataset_info.json': JSON.stringify({ gone: { file_name: 'missing.json' } }),
  });
  const bad = check(['examples/tiny_pt.yaml', '--stage', 'sft', '--dataset', join(dir, 'bad.jsonl')]);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /bad\.jsonl, line 3, byte \d+: invalid JSON/);
  const field = check(['examples/tiny_pt.yaml', '--stage', 'sft', '--dataset', join(dir, 'nooutput.json')]);
  t.equal(field.status, 2);
  t.match(field.stderr, /nooutput\.json, index 1, byte \d+, field 'output': is missing/);
  const gone = check(['examples/tiny_pt.yaml', '--stage', 'sft', '--dataset_dir', dir, '--dataset', 'gone']);
  t.equal(gone.status, 2);
  t.match(gone.stderr, /missing\.json: cannot read/);
  const unknown = check(['examples/tiny_pt.yaml', '--dataset', 'nope']);
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /dataset: dataset 'nope' is neither in .*dataset_info\.json/);
  const evalBad = check(['examples/tiny_pt.yaml', '--stage', 'sft', '--dataset', 'identity', '--eval_dataset', join(dir, 'bad.jsonl'), '--eval_strategy', 'steps']);
  t.equal(evalBad.status, 2, 'eval_dataset is checked too');
  t.match(evalBad.stderr, /eval_dataset: .*bad\.jsonl, line 3/);
});

t.test('an output_dir holding a run is refused naming both ways out; overwrite_output_dir clears it', async (t) => {
  const dir = t.testdir({ out: { 'metrics.jsonl': '{"step":1,"loss":1}\n', 'checkpoint-30': {} } });
  const out = join(dir, 'out');
  const r = check(['examples/tiny_pt.yaml', '--output_dir', out, '--overwrite_output_dir', 'false']);
  t.equal(r.status, 2);
  t.match(r.stderr, /output_dir: already holds a run \(checkpoint-30, metrics\.jsonl\).*set overwrite_output_dir: true to clear it first, or resume_from_checkpoint: true to continue it \(from checkpoint-30\)/);
  t.equal(check(['examples/tiny_pt.yaml', '--output_dir', out, '--overwrite_output_dir', 'false', '--resume_from_checkpoint', 'true']).status, 0, 'a resume may use it');
  const ok = check(['examples/tiny_pt.yaml', '--output_dir', out]);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /# output_dir: .* \(2 entries, cleared first: overwrite_output_dir\)/);
  t.ok(existsSync(join(out, 'metrics.jsonl')), 'check-config never touches it');
  // up clears it and runs (synthetic workload: the control plane only)
  const up = runCli(['up', '--workload', 'synthetic', '--synthetic-step-ms', '10', '--max_steps', '3', '--warmup_steps', '0', '--output_dir', out, '--overwrite_output_dir', '--cluster.visualizer.enabled=false'], { cwd: root, timeoutMs: 60_000 });
  t.equal(up.status, 0, up.stderr);
  t.notOk(existsSync(join(out, 'checkpoint-30')), 'the old run is gone');
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number });
  t.same(rows.map((x) => x.step), [1, 2, 3], 'metrics.jsonl holds this run only');
  const again = runCli(['up', '--workload', 'synthetic', '--max_steps', '3', '--warmup_steps', '0', '--output_dir', out, '--overwrite_output_dir', 'false'], { cwd: root, timeoutMs: 60_000 });
  t.equal(again.status, 2, 'a second run without overwrite is refused before it starts');
  t.match(again.stderr, /overwrite_output_dir: true/);
});

t.test('a hostfile host that does not resolve is named as such', async (t) => {
  const dir = t.testdir({ 'hosts.txt': '127.0.0.1 slots=1\nno-such-host.invalid slots=1\n' });
  mkdirSync(join(dir, 'o'));
  const r = check(['examples/tiny_pt.yaml', '--nodes', join(dir, 'hosts.txt'), '--sequence_parallel_size', '1', '--output_dir', join(dir, 'o')]);
  t.equal(r.status, 2);
  t.match(r.stderr, /hosts\.txt:2: the host name does not resolve: no such host \(got "no-such-host\.invalid"\); check its spelling/);
});
