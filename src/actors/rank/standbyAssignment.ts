/**
 * The rank side of a warm standby (actors/StandbyRanks.ts): reads the one JSON line its node
 * agent writes on stdin, `{"env": {...}, "args": [...]}`, and checks its shape. Null when stdin
 * ends first: the agent is gone (or stopped needing this standby) and the process leaves.
 * Must never act on a malformed line: it is refused by name, and the process exits without
 * joining the job.
 */
import type { StandbyAssignment } from '../StandbyRanks.js';

/** A line longer than this is not an assignment (the environment of a rank is a few KiB). */
const MAX_LINE_BYTES = 1 << 20;

export class StandbyAssignmentError extends Error {}

export function parseStandbyAssignment(line: string): StandbyAssignment {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new StandbyAssignmentError(`the standby's assignment is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new StandbyAssignmentError("the standby's assignment must be an object {env, args}");
  const { env, args } = v as { env?: unknown; args?: unknown };
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new StandbyAssignmentError("the standby's assignment needs env: an object of strings");
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(env)) {
    if (typeof val !== 'string') throw new StandbyAssignmentError(`the standby's assignment env.${k} must be a string`);
    out[k] = val;
  }
  if (!Array.isArray(args) || !args.every((a): a is string => typeof a === 'string')) throw new StandbyAssignmentError("the standby's assignment needs args: a list of strings");
  return { env: out, args };
}

export function readStandbyAssignment(input: NodeJS.ReadableStream): Promise<StandbyAssignment | null> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (fn: () => void) => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', onEnd);
      input.pause();
      fn();
    };
    const onData = (chunk: Buffer | string) => {
      buf += chunk.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        done(() => {
          try {
            resolve(parseStandbyAssignment(line));
          } catch (e) {
            reject(e);
          }
        });
      } else if (buf.length > MAX_LINE_BYTES) done(() => reject(new StandbyAssignmentError(`the standby's assignment is longer than ${MAX_LINE_BYTES} bytes`)));
    };
    const onEnd = () => done(() => resolve(null));
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onEnd);
  });
}
