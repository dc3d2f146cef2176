/**
 * The fuzz targets: one per parser of untrusted input, each a module in fuzz/targets/ exporting
 * `fuzz(data: Buffer)`, with the bounds the fuzzer runs it under (input size, time per input)
 * and a dictionary of the tokens its grammar is made of (message types, config keys, column
 * names, routes), which coverage feedback alone finds slowly behind map lookups.
 * Importing this module must stay cheap: the dictionaries load the parsers' tables on demand.
 */
export interface FuzzTarget {
  name: string;
  /** module under fuzz/targets/, without extension */
  module: string;
  what: string;
  /** the largest input the fuzzer makes (bytes): keeps each execution short and memory bounded */
  maxLen: number;
  /** an input running longer than this is a finding (a hang) */
  timeoutMs: number;
  /** third-party parsers the target drives, instrumented for coverage beside our code */
  instrument: readonly string[];
  dictionary: () => Promise<string[]>;
  /**
   * Jazzer.js bug detectors that do not apply: a detector reporting what the parser is meant to
   * do (dataset_info.json names files relative to dataset_dir, `..` included, as LLaMA-Factory
   * reads it: the user's own file, read with the user's rights).
   */
  disableBugDetectors?: readonly string[];
}

const words = (...w: string[]) => w;

async function configKeys(): Promise<string[]> {
  const { LEAVES } = await import('../src/config/schema.js');
  const { IGNORED_KEYS, UNSUPPORTED_KEYS } = await import('../src/config/ignoredKeys.js');
  const out = new Set<string>();
  for (const l of LEAVES) {
    for (const part of l.path.split('.')) out.add(part);
    for (const v of l.values ?? []) out.add(v);
  }
  for (const k of [...Object.keys(IGNORED_KEYS), ...Object.keys(UNSUPPORTED_KEYS)]) out.add(k);
  return [...out];
}

export const TARGETS: readonly FuzzTarget[] = [
  {
    name: 'frame',
    module: 'frame',
    what: 'control-plane frame decoder (transport/FrameCodec.ts, messages.ts)',
    maxLen: 65536,
    timeoutMs: 2000,
    instrument: ['/node_modules/msgpackr/'],
    dictionary: async () => {
      const { messageSpecs } = await import('../src/transport/messages.js');
      const { Packr } = await import('msgpackr');
      const p = new Packr({ useRecords: false });
      const plain = new Set<string>(['coord', 'agent', 'rank', 'tool']);
      for (const [type, body] of Object.entries(messageSpecs)) {
        plain.add(type);
        for (const f of Object.keys(body)) plain.add(f);
      }
      // as msgpack strings too (with their length prefix), the form they take on the wire
      return [...plain, ...[...plain].map((s) => p.pack(s).toString('latin1'))];
    },
  },
  {
    name: 'safetensors',
    module: 'safetensors',
    what: 'safetensors header (engine/safetensors.ts)',
    maxLen: 16384,
    timeoutMs: 2000,
    instrument: [],
    dictionary: async () =>
      words('"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"format"', '"pt"', ...['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'constructor', '__proto__'].map((d) => `"${d}"`)),
  },
  {
    name: 'hostfile',
    module: 'hostfile',
    what: 'hostfile and --include/--exclude (config/hostfile.ts)',
    maxLen: 8192,
    timeoutMs: 2000,
    instrument: [],
    dictionary: async () => words('slots=', 'localhost', '127.0.0.1', '::1', 'fe80::1', 'user@', 'node-1', '@', ':0,1', '#', ' slots=4096', ' slots=4097', '\r\n'),
  },
  {
    name: 'config',
    module: 'config',
    what: 'YAML job config, loading and resolution (config/loadJobConfig.ts)',
    maxLen: 16384,
    timeoutMs: 5000,
    instrument: ['/node_modules/js-yaml/'],
    dictionary: async () => [
      ...(await configKeys()).map((k) => `${k}: `),
      ...words('gradient_policy:\n  ', 'cluster:\n  ', 'visualizer:\n    ', 'deepspeed: ds.json', 'deepspeed: ds_conflict.json', 'deepspeed: ds_broken.json', '&a ', '*a', '<<: ', '!!binary ', '!!str ', '!!int ', '!!float ', '? ', '---\n', '[', ']', '{', '}', 'null', 'true', '.inf', '-.inf', '.nan', '1e400', '-1', '0x10', '~'),
    ],
  },
  {
    name: 'job-args',
    module: 'jobArgs',
    what: 'command line to resolved job (config/parseJobArgs.ts, resolveJob.ts)',
    maxLen: 4096,
    timeoutMs: 5000,
    instrument: ['/node_modules/js-yaml/'],
    dictionary: async () => [
      ...(await configKeys()).map((k) => `\n--${k}\n`),
      ...words('@job', '@hosts', '@hosts_bad', '\n--nodes\n@hosts', '\n--include\n', '\n--exclude\n', '\n--adjust-lr\n', '\n--config\n', '\n--no-', '=', '\n--json', '\n--keys', '127.0.0.1:0', 'node-1:1', '@node-1'),
    ],
  },
  {
    name: 'dataset-rows',
    module: 'datasetRows',
    what: 'dataset rows: JSON/JSONL/text, alpaca/ShareGPT/preference/pre-tokenized, templates, packing (train/data)',
    maxLen: 262144,
    timeoutMs: 5000,
    instrument: [],
    dictionary: async () =>
      words(...['instruction', 'input', 'output', 'system', 'history', 'conversations', 'messages', 'from', 'value', 'human', 'gpt', 'role', 'content', 'user', 'assistant', 'chosen', 'rejected', 'text', 'input_ids', 'labels', 'speaker', 'q', 'a', 's'].map((k) => `"${k}"`), '-100', '<think>\n', '\n</think>\n\n', '<|im_start|>', '<|eot_id|>', '[INST]', '\n'),
  },
  {
    name: 'dataset-info',
    module: 'datasetInfo',
    what: 'dataset_info.json (train/data/datasetInfo.ts) over rows of every format',
    maxLen: 16384,
    timeoutMs: 5000,
    instrument: [],
    disableBugDetectors: ['path-traversal'],
    dictionary: async () =>
      words(
        ...['file_name', 'formatting', 'ranking', 'columns', 'tags', 'alpaca', 'sharegpt', 'prompt', 'query', 'response', 'history', 'messages', 'system', 'chosen', 'rejected', 'text', 'role_tag', 'content_tag', 'user_tag', 'assistant_tag', 'system_tag', 'hf_hub_url', 'ms_hub_url', 'script_url', 'conversations', 'instruction', 'output', 'from', 'value', 'human', 'gpt', 'role', 'content'].map((k) => `"${k}"`),
        ...['alpaca.json', 'sharegpt.json', 'messages.jsonl', 'dpo_alpaca.jsonl', 'dpo_sharegpt.json', 'corpus.txt', 'pt.jsonl', 'tokens.jsonl'].map((f) => `"${f}"`),
        'true', 'false', 'null',
      ),
  },
  {
    name: 'viz-request',
    module: 'vizRequest',
    what: "visualizer request paths, Host and Last-Event-ID (viz/requestRoute.ts)",
    maxLen: 4096,
    timeoutMs: 2000,
    instrument: [],
    dictionary: async () => {
      const { clientFiles } = await import('../src/viz/assets.js');
      return words('GET\n', 'HEAD\n', 'POST\n', '/assets/', '/api/chart', '/api/info', '/api/events', '/api/metrics', '/api/stream', '?since=', '&fields=', 'step,loss', '\n127.0.0.1:8765\n', '\nlocalhost\n', '\n[::1]:8765\n', '%2e', '%2E%2E', '%2f', '%00', '%5c', '..', '/index.html', 'elk.bundled.js', 'uPlot.min.css', ...clientFiles);
    },
  },
];

export function targetByName(name: string): FuzzTarget | undefined {
  return TARGETS.find((t) => t.name === name);
}
