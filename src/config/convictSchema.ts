/**
 * The leaf specs of schema.ts as a convict schema (defaults, docs, env names and formats): the
 * loader's safety net over the same formats. Kept apart from the leaf table so the processes
 * that only check a job against the table (agents, ranks) never load convict.
 */
import convict from 'convict';
import { LEAVES, checkLeaf, envName } from './schema.js';

/** The convict schema built from LEAVES (defaults, docs, env names and formats). */
export function convictSchema(): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const l of LEAVES) {
    const parts = l.path.split('.');
    let node = root;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = {
      doc: l.doc,
      default: l.default,
      nullable: l.nullable ?? false,
      env: envName(l.path),
      format: (x: unknown) => {
        const bad = checkLeaf(l, x);
        if (bad) throw new Error(`${bad.message}; ${bad.fix}`);
      },
    };
  }
  return root;
}

/**
 * A fresh convict instance holding the defaults. It is cut off from process.env and argv:
 * the loader applies environment and flags itself, with strict coercion and source tracking.
 */
export function createConvict() {
  return convict(convictSchema() as convict.Schema<Record<string, unknown>>, { env: {}, args: [] });
}
