/**
 * `node dist/fuzz/seedCorpus.js`: writes the seed inputs of every fuzz target into
 * fuzz/corpus/<target>/seed-*: valid inputs the fuzzer starts from, made by the project's own
 * writers or taken from its examples (one frame of every message type built by the codec, small
 * safetensors files written by writeSafetensors, the example job configs, hostfiles and datasets,
 * command lines and visualizer requests). Idempotent: a seed is rewritten with the same bytes.
 * It never deletes what the fuzzer added to a corpus.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors } from '../src/engine/safetensors.js';
import { Packr } from 'msgpackr';
import { FRAME_VERSION, decodeFrame, encodeFrame } from '../src/transport/FrameCodec.js';
import { messageSpecs, type FieldSpec, type MessageType } from '../src/transport/messages.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const fromRoot = (...p: string[]) => join(root, ...p);

function put(target: string, name: string, bytes: Buffer | string): void {
  const dir = fromRoot('fuzz', 'corpus', target);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `seed-${name}`), bytes);
}

/** A value of the kind a field wants, so that every message type has one valid frame. */
function sampleOf(f: FieldSpec): unknown {
  const item = f.of === 'number' ? 1.5 : f.of === 'bytes' ? new Uint8Array([1, 2, 3]) : 'x';
  switch (f.kind) {
    case 'int': return 3;
    case 'number': return 0.25;
    case 'string': return 'ok';
    case 'bool': return true;
    case 'bytes': return new Uint8Array([0, 255]);
    case 'list': return [item, item];
    case 'map': return f.of ? { a: item } : { stage: 'sft', max_steps: 4 };
  }
}

function frames(): void {
  const packr = new Packr({ useRecords: false, moreTypes: false });
  for (const [type, spec] of Object.entries(messageSpecs) as [MessageType, Record<string, FieldSpec>][]) {
    const body = Object.fromEntries(Object.entries(spec).map(([k, f]) => [k, sampleOf(f)]));
    // the decoder types the frame; the codec then writes it as a sender would
    const r = decodeFrame(packr.pack([FRAME_VERSION, type, 'rank', 1, 2, 3, body]));
    if (!r.ok) throw new Error(`seed frame ${type} does not decode: ${r.reason}`);
    put('frame', type, encodeFrame(r.frame));
  }
}

async function safetensors(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ulysses-fuzz-seed-'));
  try {
    const files: [string, Parameters<typeof writeSafetensors>[1], Record<string, string>][] = [
      ['two-tensors', [{ name: 'model.embed_tokens.weight', shape: [4, 2], data: new Float32Array(8).fill(0.5) }, { name: 'model.norm.weight', shape: [2], data: new Float32Array([1, 2]) }], { format: 'pt' }],
      ['scalar-and-empty', [{ name: 's', shape: [], data: new Float32Array([3]) }, { name: 'e', shape: [0, 3], data: new Float32Array(0) }], {}],
    ];
    for (const [name, tensors, meta] of files) {
      const f = join(dir, `${name}.safetensors`);
      await writeSafetensors(f, tensors, meta);
      put('safetensors', name, readFileSync(f));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // half-precision dtypes, which the writer does not produce
  const header = Buffer.from(JSON.stringify({ a: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] }, b: { dtype: 'F16', shape: [1, 1], data_offsets: [4, 6] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  put('safetensors', 'bf16-f16', Buffer.concat([len, header, Buffer.alloc(6, 0x3f)]));
}

function hostfiles(): void {
  const texts: [string, string][] = [
    ['examples-hosts', readFileSync(fromRoot('examples', 'hosts.txt'), 'utf8')],
    ['fixture-good', readFileSync(fromRoot('test', 'config', 'fixtures', 'hosts_good.txt'), 'utf8')],
    ['fixture-bad', readFileSync(fromRoot('test', 'config', 'fixtures', 'hosts_bad.txt'), 'utf8')],
    ['ipv6-colon', 'fe80::1 slots=2\nnode-1:4\nuser@node-2 slots=1 # comment\n'],
  ];
  for (const [name, text] of texts) {
    put('hostfile', `${name}-all`, Buffer.concat([Buffer.from([0]), Buffer.from(text)]));
    put('hostfile', `${name}-include`, Buffer.concat([Buffer.from([1]), Buffer.from('127.0.0.1:0@127.0.0.2'), Buffer.from([0]), Buffer.from(text)]));
    put('hostfile', `${name}-exclude`, Buffer.concat([Buffer.from([2]), Buffer.from('127.0.0.2:1'), Buffer.from([0]), Buffer.from(text)]));
  }
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'models' ? [] : yamlFiles(join(dir, e.name))) : e.name.endsWith('.yaml') ? [join(dir, e.name)] : [],
  );
}

function configs(): void {
  for (const f of [...yamlFiles(fromRoot('examples')), ...yamlFiles(fromRoot('test', 'config', 'fixtures'))]) {
    put('config', f.slice(root.length + 1).replaceAll('/', '_'), readFileSync(f));
  }
  put('config', 'deepspeed', 'stage: sft\nfinetuning_type: full\ndeepspeed: ds.json\nmax_steps: 3\ncutoff_len: 64\n');
  put('config', 'deepspeed-conflict', 'deepspeed: ds_conflict.json\nper_device_train_batch_size: 2\n');
  put('config', 'anchors', 'gradient_policy: &p\n  enabled: false\ncluster:\n  <<: {}\nlora_target: [q_proj, v_proj]\n');
}

function commandLines(): void {
  const lines: [string, string[]][] = [
    ['job-nodes-include', ['@job', '--nodes', '@hosts', '--include', '127.0.0.1:0,1']],
    ['job-exclude', ['--config', '@job', '--nodes', '@hosts', '--exclude', 'node-1']],
    ['flags', ['@job', '--learning_rate', '1e-4', '--adjust-lr', '0.5', '--bf16', '--no-debug', '--heartbeat_interval_s=2']],
    ['default-job', ['--max_steps', '3', '--json']],
    ['bad-hosts', ['@job', '--nodes', '@hosts_bad']],
    ['unknown', ['@job', '--learning-rat', '1', '--keys']],
  ];
  for (const [name, argv] of lines) put('job-args', name, argv.join('\n'));
}

/** Option bytes of dataset-rows: a = kind + 3 * stage + 9 * template (+128: packing), b = entry + 8 * cutoff step (+128: vocab 512). */
function datasetRows(): void {
  const data = (f: string) => readFileSync(fromRoot('examples', 'data', f));
  const rows: [string, number, number, Buffer][] = [
    ['alpaca-sft', 0 + 3 * 1 + 9 * 1, 1 + 8 * 4, data('alpaca_en_demo.json')],
    ['identity-sft-qwen', 0 + 3 * 1 + 9 * 2, 0 + 8 * 7, data('identity.json')],
    ['sharegpt-sft', 0 + 3 * 1 + 9 * 3, 2 + 8 * 9 + 128, data('sharegpt_demo.json')],
    ['messages-sft', 1 + 3 * 1 + 9 * 4, 3 + 8 * 5, data('messages_demo.jsonl')],
    ['dpo-alpaca', 1 + 3 * 2, 4 + 8 * 6, data('dpo_alpaca_demo.jsonl')],
    ['dpo-sharegpt', 0 + 3 * 2 + 9 * 3, 5 + 8 * 8, data('dpo_en_demo.json')],
    ['pt-text', 1 + 3 * 0 + 128, 6 + 8 * 3, data('pt_text_demo.jsonl')],
    ['pt-corpus', 2 + 3 * 0 + 128, 0 + 8 * 15 + 128, data('tiny_corpus.txt').subarray(0, 4000)],
    ['pretokenized', 1 + 3 * 1, 0 + 8 * 2, data('pretokenized_demo.jsonl')],
  ];
  for (const [name, a, b, bytes] of rows) put('dataset-rows', name, Buffer.concat([Buffer.from([a, b]), bytes]));
}

function datasetInfos(): void {
  const info = {
    alpaca: { file_name: 'alpaca.json', columns: { prompt: 'instruction', query: 'input', response: 'output', system: 'system', history: 'history' } },
    sharegpt: { file_name: 'sharegpt.json', formatting: 'sharegpt', columns: { messages: 'conversations', system: 'system' } },
    messages: { file_name: 'messages.jsonl', formatting: 'sharegpt', columns: { messages: 'messages' }, tags: { role_tag: 'role', content_tag: 'content', user_tag: 'user', assistant_tag: 'assistant', system_tag: 'system' } },
  };
  const dpo = {
    dpo_alpaca: { file_name: 'dpo_alpaca.jsonl', ranking: true, columns: { prompt: 'instruction', query: 'input', chosen: 'chosen', rejected: 'rejected' } },
    dpo_sharegpt: { file_name: 'dpo_sharegpt.json', formatting: 'sharegpt', ranking: true, columns: { messages: 'conversations', chosen: 'chosen', rejected: 'rejected' } },
  };
  const pt = { corpus: { file_name: 'corpus.txt', columns: { prompt: 'text' } }, pt: { file_name: 'pt.jsonl' }, tokens: { file_name: 'tokens.jsonl' } };
  // the target picks the stage from the input's length (length % 3: pt, sft, dpo): pad to match
  const sized = (o: unknown, stage: number) => {
    let s = JSON.stringify(o, null, 1);
    while (s.length % 3 !== stage) s += '\n';
    return s;
  };
  put('dataset-info', 'sft', sized(info, 1));
  put('dataset-info', 'dpo', sized(dpo, 2));
  put('dataset-info', 'pt', sized(pt, 0));
  put('dataset-info', 'hub', sized({ hub: { hf_hub_url: 'org/name' }, alpaca: info.alpaca }, 1));
}

function vizRequests(): void {
  const reqs: [string, string[]][] = [
    ['page', ['GET', '/', '127.0.0.1:8765']],
    ['asset', ['GET', '/assets/main.js', 'localhost']],
    ['metrics-fields', ['GET', '/api/metrics?since=3&fields=step,loss', '127.0.0.1:8765']],
    ['stream-resume', ['GET', '/api/stream?since=2', '[::1]:8765', '41']],
    ['events-head', ['HEAD', '/api/events?since=0', 'localhost:8765']],
    ['traversal', ['GET', '/assets/%2e%2e/package.json', '127.0.0.1:8765']],
  ];
  for (const [name, lines] of reqs) put('viz-request', name, lines.join('\n'));
}

frames();
await safetensors();
hostfiles();
configs();
commandLines();
datasetRows();
datasetInfos();
vizRequests();
console.error(`fuzz: seeds written under ${fromRoot('fuzz', 'corpus')}`);
