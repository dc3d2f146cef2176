// deploy/: the Kubernetes manifest and the Slurm script start agents with the same command line
// the external launcher prints (agent --join ... --job-key FILE --host-index I --slots N), never
// carry key material, and their job config and hostfile pass check-config.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadAll } from 'js-yaml';
import { runCli } from '../helpers/cli.js';

const root = new URL('../../', import.meta.url).pathname;

t.test('kubernetes manifest', async (t) => {
  const docs = loadAll(readFileSync(join(root, 'deploy/kubernetes/ulysses.yaml'), 'utf8')) as Record<string, any>[];
  const byName = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name)!;
  const cm = byName('ConfigMap', 'ulysses-job');
  const dir = t.testdir();
  writeFileSync(join(dir, 'job.yaml'), cm.data['job.yaml']);
  writeFileSync(join(dir, 'hosts.txt'), cm.data['hosts.txt']);
  // as the coordinator Job runs it: external agents (pods), whose names resolve only inside the cluster
  const r = runCli(['check-config', join(dir, 'job.yaml'), '--nodes', join(dir, 'hosts.txt'), '--launcher=external'], { timeoutMs: 30_000 });
  t.equal(r.status, 0, r.stderr);
  const up = byName('Job', 'ulysses-coordinator').spec.template.spec.containers[0].args as string[];
  t.same(up.slice(0, 1), ['up']);
  t.ok(up.includes('--launcher=external'));
  t.ok(up.includes('--cluster.bind_address=0.0.0.0'), 'binds a non-loopback address only because it is asked to');
  const agents = byName('Job', 'ulysses-agent');
  const cmd = agents.spec.template.spec.containers[0].args[0] as string;
  t.match(cmd, /^exec ulysses-actors agent --join tcp:\/\/ulysses-coordinator:29500 --job-key \/etc\/ulysses-key\/job\.key --host-index "\$JOB_COMPLETION_INDEX" --slots 1$/);
  t.equal(agents.spec.completions, cm.data['hosts.txt'].trim().split('\n').length, 'one agent per hostfile line');
  t.notMatch(JSON.stringify(docs), /secretKey|publicKey/, 'no key material in the manifest');
});

t.test('slurm script', async (t) => {
  const text = readFileSync(join(root, 'deploy/slurm/ulysses.sbatch'), 'utf8');
  t.match(text, /ulysses-actors up --nodes "\$RUN\/hosts.txt" "\$CONFIG" --launcher external --job-key "\$KEY"/);
  t.match(text, /exec ulysses-actors agent --join "tcp:\/\/\$0:\$1" --job-key "\$2" --host-index "\$SLURM_NODEID" --slots "\$3"/);
  const bashCheck = spawnSync('bash', ['-n', join(root, 'deploy/slurm/ulysses.sbatch')], { encoding: 'utf8' });
  t.equal(bashCheck.status, 0, `bash -n: ${bashCheck.stderr}`);
});

t.test('Dockerfile installs what the native addon and the ssh launcher need', async (t) => {
  const text = readFileSync(join(root, 'deploy/Dockerfile'), 'utf8');
  for (const p of ['libopenblas-dev', 'libgloo-dev', 'openssh-client']) t.match(text, p);
  t.match(text, /ENTRYPOINT \["ulysses-actors"\]/);
});
