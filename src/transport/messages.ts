/**
 * Control-plane message types and the shape of each body. Decoding checks every frame against
 * this table; anything not described here is dropped. Tensors never travel on this plane.
 * Types are namespaced strings (`rank.step.done`); bodies are plain msgpack-able objects.
 */
export type FieldKind = 'int' | 'number' | 'string' | 'bool' | 'object' | 'array' | 'bytes' | 'any';

export interface FieldSpec {
  kind: FieldKind;
  optional?: boolean;
  /** for strings: maximum length; for arrays: maximum items */
  max?: number;
}

export type BodySpec = Record<string, FieldSpec>;

const int = (o: Partial<FieldSpec> = {}): FieldSpec => ({ kind: 'int', ...o });
const num = (o: Partial<FieldSpec> = {}): FieldSpec => ({ kind: 'number', ...o });
const str = (o: Partial<FieldSpec> = {}): FieldSpec => ({ kind: 'string', max: 4096, ...o });
const bool = (o: Partial<FieldSpec> = {}): FieldSpec => ({ kind: 'bool', ...o });
const obj = (o: Partial<FieldSpec> = {}): FieldSpec => ({ kind: 'object', ...o });
const bytes = (o: Partial<FieldSpec> = {}): FieldSpec => ({ kind: 'bytes', ...o });
const opt = (f: FieldSpec): FieldSpec => ({ ...f, optional: true });

/** Every message the control plane understands, with its body's shape. */
export const messageSpecs = {
  // membership
  'peer.hello': { role: str({ max: 16 }), host: str({ max: 256 }), pid: int(), slots: opt(int()), rank: opt(int()), incarnation: opt(int()) },
  'peer.welcome': { jobId: str({ max: 128 }), world: int(), config: opt(obj()), attempt: opt(int()) },
  'peer.bye': { reason: str() },
  // liveness: application heartbeats carry progress so hangs are visible
  'peer.heartbeat': { step: int(), phase: str({ max: 64 }), busy: opt(bool()) },
  // rendezvous key-value store for the data plane (Gloo)
  'kv.set': { key: str({ max: 1024 }), value: bytes() },
  'kv.get': { key: str({ max: 1024 }), id: int() },
  'kv.wait': { keys: { kind: 'array', max: 4096 }, id: int(), timeoutMs: int() },
  'kv.reply': { id: int(), value: opt(bytes()), values: opt({ kind: 'array', max: 4096 }), error: opt(str()) },
  // agents
  'agent.spawn': { rank: int(), incarnation: int(), env: obj(), args: { kind: 'array', max: 256 } },
  'agent.stop': { rank: int(), incarnation: int(), reason: str(), graceMs: int() },
  'agent.signal': { rank: int(), signal: str({ max: 16 }) },
  'agent.rank.started': { rank: int(), incarnation: int(), pid: int() },
  'agent.rank.exited': {
    rank: int(),
    incarnation: int(),
    pid: int(),
    code: opt(int()),
    signal: opt(str({ max: 16 })),
    stderrTail: str({ max: 65536 }),
    unkillable: opt(bool()),
  },
  // ranks
  'rank.ready': { rank: int(), resumedFrom: opt(int()) },
  'rank.done': { step: int(), finalHash: opt(str({ max: 128 })) },
  'rank.step.done': {
    step: int(),
    loss: num(),
    tokens: int(),
    planDigest: str({ max: 64 }),
    policyState: str({ max: 64 }),
    stats: opt(obj()),
    stepMs: opt(num()),
  },
  'rank.policy.transition': { step: int(), from: str({ max: 64 }), to: str({ max: 64 }), reason: opt(str()) },
  'rank.checkpoint.written': { step: int(), path: str(), checksum: str({ max: 128 }) },
  'rank.failed': { reason: str({ max: 65536 }), code: opt(str({ max: 64 })) },
  // commands from the coordinator
  'job.command': { command: str({ max: 32 }), step: opt(int()), detail: opt(obj()) },
} as const satisfies Record<string, BodySpec>;

export type MessageType = keyof typeof messageSpecs;

export const messageTypes = new Set<string>(Object.keys(messageSpecs));

function checkField(name: string, spec: FieldSpec, v: unknown): string | null {
  if (v === undefined || v === null) return spec.optional ? null : `missing field '${name}'`;
  switch (spec.kind) {
    case 'int':
      return Number.isSafeInteger(v) ? null : `field '${name}' must be an integer`;
    case 'number':
      return typeof v === 'number' ? null : `field '${name}' must be a number`;
    case 'string':
      if (typeof v !== 'string') return `field '${name}' must be a string`;
      return spec.max !== undefined && v.length > spec.max ? `field '${name}' longer than ${spec.max}` : null;
    case 'bool':
      return typeof v === 'boolean' ? null : `field '${name}' must be a boolean`;
    case 'object':
      return typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) ? null : `field '${name}' must be a map`;
    case 'array':
      if (!Array.isArray(v)) return `field '${name}' must be an array`;
      return spec.max !== undefined && v.length > spec.max ? `field '${name}' has more than ${spec.max} items` : null;
    case 'bytes':
      return v instanceof Uint8Array ? null : `field '${name}' must be bytes`;
    default:
      return null;
  }
}

/** Validates a body against its type's spec; returns a reason, or null when it is well formed. */
export function validateBody(type: string, body: unknown): string | null {
  const spec = (messageSpecs as Record<string, BodySpec>)[type];
  if (!spec) return `unknown message type '${type}'`;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a map';
  for (const [name, f] of Object.entries(spec)) {
    const err = checkField(name, f, (body as Record<string, unknown>)[name]);
    if (err) return err;
  }
  return null;
}
