/**
 * Real network faults beside the fault proxy: a two-host lab on this machine where each host is a
 * network namespace of its own, joined by a veth pair, with addresses that exist only inside them
 * (10.250.0.1 and 10.250.0.2). Processes run in a host with exec(); packet loss (nftables
 * `numgen random` drops) and partitions (drop rules) are made by nftables inside the host's
 * namespace, in both directions; these kernels have no `tc netem`, so delay stays with the fault
 * proxy. Needs root and a kernel that allows namespaces: create() says why not otherwise.
 * Must never touch the machine's own network namespace; close() removes everything it made,
 * also after a failure, and is safe to call twice.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

export class NetnsRefused extends Error {
  readonly code = 'ERR_NETNS_REFUSED';
}

export interface LabHost {
  ns: string;
  addr: string;
}

function run(args: string[], input?: string): { ok: boolean; out: string } {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', input });
  return { ok: r.status === 0, out: `${r.stderr ?? ''}${r.stdout ?? ''}`.trim() || (r.error?.message ?? `exit ${r.status}`) };
}

export class NetnsLab {
  private closed = false;

  private constructor(readonly hosts: LabHost[]) {}

  /** Two hosts, namespaces named after `tag` (this process's pid by default, so parallel labs never collide). */
  static create(tag: number | string = process.pid): NetnsLab {
    const ns = [`ua${tag}h0`, `ua${tag}h1`];
    const veth = [`uv${tag}a`, `uv${tag}b`];
    const lab = new NetnsLab([
      { ns: ns[0]!, addr: '10.250.0.1' },
      { ns: ns[1]!, addr: '10.250.0.2' },
    ]);
    const first = run(['ip', 'netns', 'add', ns[0]!]);
    if (!first.ok) throw new NetnsRefused(`ip netns add refused: ${first.out}`);
    const steps: string[][] = [
      ['ip', 'netns', 'add', ns[1]!],
      ['ip', 'link', 'add', veth[0]!, 'netns', ns[0]!, 'type', 'veth', 'peer', 'name', veth[1]!, 'netns', ns[1]!],
    ];
    lab.hosts.forEach((h, i) => {
      steps.push(['ip', '-n', h.ns, 'link', 'set', 'lo', 'up']);
      steps.push(['ip', '-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', veth[i]!]);
      steps.push(['ip', '-n', h.ns, 'link', 'set', veth[i]!, 'up']);
    });
    for (const s of steps) {
      const r = run(s);
      if (!r.ok) {
        lab.close();
        throw new Error(`network lab: ${s.join(' ')} failed: ${r.out}`);
      }
    }
    return lab;
  }

  /** Starts a process inside a host's namespace. */
  exec(host: number, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.hosts[host]!.ns, ...argv], opts);
  }

  private nft(host: number, rules: string): void {
    const h = this.hosts[host]!;
    const r = run(['ip', 'netns', 'exec', h.ns, 'nft', '-f', '-'], rules);
    if (!r.ok) throw new Error(`network lab: nft in ${h.ns} failed: ${r.out}`);
  }

  /** Replaces the host's fault rules: `verdict` applies to every packet to or from the other hosts. */
  private rules(host: number, verdict: string | null): void {
    const others = this.hosts.filter((_, i) => i !== host).map((h) => h.addr).join(', ');
    const chains = verdict === null ? '' : `
  chain input { type filter hook input priority 0; policy accept; ip saddr { ${others} } ${verdict}; }
  chain output { type filter hook output priority 0; policy accept; ip daddr { ${others} } ${verdict}; }`;
    // `table ... ; delete table ...` first makes the replacement work whether or not it existed
    this.nft(host, `table inet ua_faults {}\ndelete table inet ua_faults\ntable inet ua_faults {${chains}\n}\n`);
  }

  /** Drops `percent` % of the host's packets to and from the others, each way. */
  loss(host: number, percent: number): void {
    this.rules(host, `numgen random mod 100 < ${Math.round(percent)} counter drop`);
  }

  /** Cuts the host off from the others (every packet dropped, both ways). */
  partition(host: number): void {
    this.rules(host, 'counter drop');
  }

  /** Packets the host's current fault rules dropped so far (the proof that a fault had an effect). */
  dropped(host: number): number {
    const r = run(['ip', 'netns', 'exec', this.hosts[host]!.ns, 'nft', 'list', 'table', 'inet', 'ua_faults']);
    if (!r.ok) throw new Error(`network lab: nft list in ${this.hosts[host]!.ns} failed: ${r.out}`);
    return [...r.out.matchAll(/counter packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  }

  /** The lab's namespaces that still exist (none after close()). */
  leftovers(): string[] {
    const listed = run(['ip', 'netns', 'list']).out.split('\n').map((l) => l.split(' ')[0]);
    return this.hosts.map((h) => h.ns).filter((ns) => listed.includes(ns));
  }

  /** Removes the host's fault rules. */
  heal(host: number): void {
    this.rules(host, null);
  }

  /** Deletes the namespaces (and so the veth pair and the rules). Processes must be stopped first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.hosts) run(['ip', 'netns', 'del', h.ns]);
  }
}
