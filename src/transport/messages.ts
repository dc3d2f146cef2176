/**
 * Control-plane message types and the shape of each body: one table that decoding checks every
 * frame against (anything not described here is dropped) and that the TypeScript types of the
 * bodies are derived from (`BodyOf<'rank.step.done'>`), so a sender cannot build and a handler
 * cannot read a field the table does not have. Tensors never travel on this plane.
 * Types are namespaced strings (`rank.step.done`); bodies are plain msgpack-able objects.
 */
export type FieldKind = 'int' | 'number' | 'string' | 'bool' | 'map' | 'list' | 'bytes';

/** The kinds a list's items or a map's values may be checked for. */
type ItemKind = 'string' | 'number' | 'bytes';
type ItemType<K extends ItemKind> = K extends 'string' ? string : K extends 'number' ? number : Uint8Array;

export interface FieldSpec<T = unknown, Optional extends boolean = boolean> {
  readonly kind: FieldKind;
  readonly optional: Optional;
  /** for strings: maximum length; for lists: maximum items */
  readonly max?: number;
  /** for lists: the kind of every item; for maps: the kind of every value (unchecked when absent) */
  readonly of?: ItemKind;
  /** the field's TypeScript type; never set at run time */
  readonly type?: T;
}

const field = <T>(kind: FieldKind, o: { max?: number; of?: ItemKind } = {}): FieldSpec<T, false> => ({ kind, optional: false, ...o });
const int = () => field<number>('int');
const num = () => field<number>('number');
const str = (max = 4096) => field<string>('string', { max });
const bool = () => field<boolean>('bool');
const bytes = () => field<Uint8Array>('bytes');
const listOf = <K extends ItemKind>(of: K, max: number) => field<ItemType<K>[]>('list', { of, max });
const mapOf = <K extends ItemKind>(of: K) => field<Record<string, ItemType<K>>>('map', { of });
/** a map whose content the receiver parses itself (the job in peer.welcome) */
const opaqueMap = () => field<unknown>('map');
const opt = <T>(f: FieldSpec<T, false>): FieldSpec<T, true> => ({ ...f, optional: true });

/** Every message the control plane understands, with its body's shape. */
export const messageSpecs = {
  // membership
  'peer.hello': { role: str(16), host: str(256), pid: int(), slots: opt(int()), rank: opt(int()), incarnation: opt(int()) },
  // job: the resolved job (config/JobSpec.ts's WireJob), parsed by its receiver
  'peer.welcome': { jobId: str(128), world: int(), job: opt(opaqueMap()), attempt: opt(int()) },
  'peer.bye': { reason: str() },
  // the coordinator's receipt of a rank's final report (`of`: rank.done or rank.failed): a rank
  // waits for it before exiting, so a report sent while the coordinator is paused is not lost
  'peer.ack': { of: str(32) },
  // liveness: application heartbeats carry progress so hangs are visible
  'peer.heartbeat': { step: int(), phase: str(64), busy: opt(bool()) },
  // rendezvous key-value store for the data plane (Gloo)
  'kv.set': { key: str(1024), value: bytes() },
  'kv.get': { key: str(1024), id: int() },
  'kv.wait': { keys: listOf('string', 4096), id: int(), timeoutMs: int() },
  'kv.reply': { id: int(), value: opt(bytes()), values: opt(listOf('bytes', 4096)), error: opt(str()) },
  // agents
  'agent.spawn': { rank: int(), incarnation: int(), env: mapOf('string'), args: listOf('string', 256) },
  'agent.stop': { rank: int(), incarnation: int(), reason: str(), graceMs: int() },
  'agent.signal': { rank: int(), signal: str(16) },
  'agent.rank.started': { rank: int(), incarnation: int(), pid: int() },
  'agent.rank.exited': {
    rank: int(),
    incarnation: int(),
    pid: int(),
    code: opt(int()),
    signal: opt(str(16)),
    stderrTail: str(65536),
    unkillable: opt(bool()),
  },
  // ranks
  'rank.ready': { rank: int(), resumedFrom: opt(int()) },
  // trained: optimizer steps run by this attempt (0: the checkpoint it resumed was already at the
  // end); note: what the rank wants the user to read about it (e.g. the final model it wrote)
  'rank.done': { step: int(), finalHash: opt(str(128)), trained: opt(int()), note: opt(str(1024)) },
  // the step report (train/Workload.ts's StepReport is this body)
  'rank.step.done': {
    step: int(),
    loss: num(),
    tokens: int(),
    planDigest: str(64),
    policyState: str(64),
    stats: opt(mapOf('number')),
    stepMs: opt(num()),
  },
  'rank.policy.transition': { step: int(), from: str(64), to: str(64), reason: opt(str()) },
  // an evaluation after optimizer step `step` (rank 0's; metrics eval_loss, eval_runtime, epoch, ...)
  'rank.eval.done': { step: int(), metrics: mapOf('number') },
  'rank.checkpoint.written': { step: int(), path: str(), checksum: str(128) },
  'rank.failed': { reason: str(65536), code: opt(str(64)) },
  // commands from the coordinator
  'job.command': { command: str(32), step: opt(int()), detail: opt(mapOf('string')) },
} as const satisfies Record<string, Record<string, FieldSpec>>;

type Specs = typeof messageSpecs;
export type MessageType = keyof Specs;

type FieldType<F> = F extends FieldSpec<infer T> ? T : never;
type RequiredKeys<S> = { [F in keyof S]: S[F] extends FieldSpec<unknown, false> ? F : never }[keyof S];
type OptionalKeys<S> = Exclude<keyof S, RequiredKeys<S>>;
type Flat<T> = { [K in keyof T]: T[K] };

/** The body of a message of type K, as the table describes it. */
export type BodyOf<K extends MessageType> = Flat<
  { [F in RequiredKeys<Specs[K]>]: FieldType<Specs[K][F]> } & { [F in OptionalKeys<Specs[K]>]?: FieldType<Specs[K][F]> }
>;

export const messageTypes = new Set<string>(Object.keys(messageSpecs));

function checkItem(of: ItemKind, v: unknown): boolean {
  return of === 'bytes' ? v instanceof Uint8Array : typeof v === of;
}

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
    case 'map':
      if (typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return `field '${name}' must be a map`;
      return spec.of && !Object.values(v).every((x) => checkItem(spec.of!, x)) ? `field '${name}' must map names to ${spec.of} values` : null;
    case 'list':
      if (!Array.isArray(v)) return `field '${name}' must be an array`;
      if (spec.max !== undefined && v.length > spec.max) return `field '${name}' has more than ${spec.max} items`;
      return spec.of && !v.every((x) => checkItem(spec.of!, x)) ? `field '${name}' must hold ${spec.of} items` : null;
    case 'bytes':
      return v instanceof Uint8Array ? null : `field '${name}' must be bytes`;
  }
}

/** Validates a body against its type's spec; returns a reason, or null when it is well formed. */
export function validateBody(type: string, body: unknown): string | null {
  const spec = (messageSpecs as Record<string, Record<string, FieldSpec>>)[type];
  if (!spec) return `unknown message type '${type}'`;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a map';
  for (const [name, f] of Object.entries(spec)) {
    const err = checkField(name, f, (body as Record<string, unknown>)[name]);
    if (err) return err;
  }
  return null;
}
