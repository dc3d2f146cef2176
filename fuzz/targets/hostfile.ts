/**
 * Fuzz target `hostfile`: DeepSpeed-style hostfiles and the --include/--exclude selectors
 * (config/hostfile.ts), then rank placement. Input: `[mode byte][selector]\0[hostfile text]`, the
 * mode byte choosing no selector, --include or --exclude. Only a ConfigError is a documented
 * refusal. Accepted hosts must each have 1..MAX_SLOTS distinct slots, and placement must number
 * every selected slot exactly once.
 */
import { ConfigError } from '../../src/config/ConfigError.js';
import { MAX_SLOTS, parseHostfile, placeRanks, selectHosts, worldSizeOf } from '../../src/config/hostfile.js';
import { check, expectOnly, splitAtNul } from './harness.js';

const refused = (e: unknown) => e instanceof ConfigError && e.problems.length > 0;

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const [head, rest] = splitAtNul(data.subarray(1));
  const text = rest.length > 0 ? rest.toString('utf8') : head.toString('utf8');
  const selector = rest.length > 0 ? head.toString('utf8') : undefined;
  const mode = data[0]! % 3;
  const hosts = expectOnly(() => parseHostfile(text, 'hosts.txt'), refused);
  if (!hosts) return;
  check(hosts.length > 0, 'accepted a hostfile with no hosts');
  check(new Set(hosts.map((h) => h.host)).size === hosts.length, 'accepted a duplicate host');
  for (const h of hosts) check(h.slots.length >= 1 && h.slots.length <= MAX_SLOTS, `host ${h.host}: ${h.slots.length} slots`);
  const sel = selector === undefined || mode === 0 ? {} : mode === 1 ? { include: selector } : { exclude: selector };
  const picked = expectOnly(() => selectHosts(hosts, sel), refused);
  if (!picked) return;
  check(picked.length > 0, 'a selection kept no host');
  const ranks = placeRanks(picked);
  check(ranks.length === worldSizeOf(picked), `${ranks.length} ranks placed for a world of ${worldSizeOf(picked)}`);
  ranks.forEach((r, i) => check(r.rank === i, `rank ${r.rank} placed at ${i}`));
  for (const h of picked) {
    const all = hosts.find((x) => x.host === h.host);
    check(all !== undefined && h.slots.every((s) => all.slots.includes(s)), `selection invented slots on ${h.host}`);
  }
}
