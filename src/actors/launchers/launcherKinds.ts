/**
 * `up`'s rule for which launcher starts each host's agent: an explicit cluster.launcher applies
 * to every host; left at its default, loopback addresses and this machine's name run locally and
 * every other host over ssh. Also the check that refuses a loopback-only coordinator with agents
 * on other machines. Pure apart from reading os.hostname().
 */
import { hostname } from 'node:os';
import type { ClusterSettings } from '../../config/ClusterSettings.js';

export type LauncherKind = ClusterSettings['launcher'];

/** A host name without `user@`. */
export const bareHost = (h: string) => h.slice(h.lastIndexOf('@') + 1);

export function isLoopbackHost(h: string): boolean {
  const b = bareHost(h).toLowerCase();
  return b === 'localhost' || b === 'ip6-localhost' || b === '::1' || /^127\.\d+\.\d+\.\d+$/.test(b);
}

export function isThisMachine(h: string): boolean {
  return isLoopbackHost(h) || bareHost(h) === hostname();
}

/** Which launcher each host gets. */
export function launcherKinds(hosts: string[], configured: LauncherKind, explicit: boolean): LauncherKind[] {
  if (explicit) return hosts.map(() => configured);
  if (configured !== 'local') return hosts.map(() => configured);
  return hosts.map((h) => (isThisMachine(h) ? 'local' : 'ssh'));
}

/** Why this plan cannot work (agents that could not reach a loopback-only coordinator), or null. */
export function bindProblem(hosts: string[], kinds: LauncherKind[], bindHost: string): string | null {
  if (!isLoopbackHost(bindHost)) return null;
  const remote = hosts.filter((h, i) => kinds[i] !== 'local' && !isThisMachine(h));
  if (remote.length === 0) return null;
  return `the coordinator binds ${bindHost} (loopback) but ${remote.join(', ')} ${remote.length === 1 ? 'is another machine' : 'are other machines'}`;
}
