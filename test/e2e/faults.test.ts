// Faults as a user meets them through `ulysses-actors up`: a deterministic error inside a rank
// (a malformed data row, a resume_from_checkpoint that names no checkpoint) fails the job at once
// with one message, exit 1 and no restart; a SIGKILL of `up` stops its agents and ranks at once
// (their lifeline closes) and the next start sweeps the job key directory it left in /tmp, while a
// new `up` on the same output_dir resumes the interrupted run by itself; a resume whose
// checkpoint is at or past the end trains nothing, writes the final model if it is missing and
// says so. Nothing of any job is left (processes, /tmp, /dev/shm).
import t from 'tap';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { entriesOwnedBy } from '../../src/actors/sweepStale.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { alive, collect, gone, jobPids, killAll, readEvents, waitFor } from '../helpers/jobProcesses.js';

const FAST = ['--cluster.heartbeat_interval_s', '0.5', '--cluster.heartbeat_miss_limit', '6', '--cluster.shutdown_grace_s', '1', '--cluster.rendezvous_timeout_s', '60'];
/** the tiny model on its small corpus: a real training job of a few seconds */
const TINY = ['examples/tiny_pt.yaml', ...FAST, '--logging_steps', '1'];

/** Every occurrence of `needle` in `text`. */
const count = (text: string, needle: string) => text.split(needle).length - 1;

async function nothingLeft(t: Tap.Test, out: string, extra: number[] = []) {
  const pids = [...jobPids(readEvents(join(out, 'events.ndjson'))), ...extra];
  t.same(await gone(pids), [], `no process of the job is left (${pids.length} checked)`);
  t.same(entriesOwnedBy(pids), [], 'no /tmp or /dev/shm name of the job is left');
}

t.test('a malformed data row fails the job at once: one message, exit 1, no restart', async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  rmSync(data, { recursive: true, force: true });
  // the bad line is past the rows check-config and up read before start (ROWS_CHECKED), so only a rank meets it
  const lines = Array.from({ length: 1100 }, (_, i) => JSON.stringify({ text: `line ${i + 1} of a small corpus about rivers and hills.` }));
  lines[1049] = lines[1049]!.slice(0, 20);
  writeFileSync(join(dir, 'corpus.jsonl'), lines.join('\n') + '\n');
  writeFileSync(join(dir, 'dataset_info.json'), JSON.stringify({ corpus: { file_name: 'corpus.jsonl', columns: { prompt: 'text' } } }));
  const out = join(dir, 'out');
  const r = runCli(['up', ...TINY, '--dataset', 'corpus', '--dataset_dir', dir, '--max_steps', '4', '--cluster.max_restarts', '3', '--output_dir', out], { timeoutMs: 120_000 });
  t.equal(r.status, 1, `exit 1\n${r.stdout}\n${r.stderr}`);
  const where = `${join(dir, 'corpus.jsonl')}, line 1050`;
  t.equal(count(r.stdout + r.stderr, where), 1, `the error is printed once:\n${r.stderr}`);
  t.match(r.stderr, /job failed: rank \d: .*corpus\.jsonl, line 1050, byte \d+: invalid JSON.*\(ERR_DATA; a restart cannot fix this, so the job was not restarted\)/);
  t.notMatch(r.stdout + r.stderr, /restart intensity|restarting every rank/, 'no restart was tried');
  const events = readEvents(join(out, 'events.ndjson'));
  t.equal(events.filter((e) => e.type === 'job.restarted').length, 0, 'no job.restarted event');
  t.same(events.filter((e) => e.type === 'job.failed').map((e) => e.kind), ['deterministic']);
  await nothingLeft(t, out);
});

t.test('a resume_from_checkpoint that names no checkpoint fails at once, not after restarts', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  const r = runCli(['up', ...TINY, '--max_steps', '2', '--resume_from_checkpoint', join(dir, 'nowhere', 'checkpoint-5'), '--output_dir', out], { timeoutMs: 120_000 });
  t.equal(r.status, 1, `exit 1\n${r.stdout}\n${r.stderr}`);
  t.equal(count(r.stderr, 'does not exist'), 1, `printed once:\n${r.stderr}`);
  t.match(r.stderr, /job failed: rank 0: resume_from_checkpoint: .*checkpoint-5 does not exist \(ERR_CHECKPOINT; a restart cannot fix this/);
  t.equal(readEvents(join(out, 'events.ndjson')).filter((e) => e.type === 'job.restarted').length, 0);
  await nothingLeft(t, out);
});

t.test('SIGKILL of up: its agents and ranks stop at once; the next up sweeps its key dir and resumes the run', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  // overwrite_output_dir false: the second up finds this job's run in output_dir and continues it
  const args = ['up', '--workload', 'synthetic', '--synthetic-step-ms', '40', ...FAST, '--max_steps', '120', '--save_steps', '10', '--logging_steps', '10', '--output_dir', out, '--overwrite_output_dir', 'false'];
  const first = spawnCli(args);
  const io = collect(first);
  t.teardown(() => killAll([first.pid!, ...jobPids(readEvents(join(out, 'events.ndjson')))].filter(alive)));
  const events = join(out, 'events.ndjson');
  await waitFor('step 25', () => readEvents(events).some((e) => e.type === 'job.step' && (e.step as number) >= 25), 60_000);
  const started = readEvents(events).find((e) => e.type === 'job.started')!;
  const upPid = started.pid as number;
  const pids = jobPids(readEvents(events));
  t.equal(pids.length, 3, 'an agent and two ranks');
  // `up` is the shell's exec'd node: SIGKILL it without any chance to clean up
  process.kill(upPid, 'SIGKILL');
  await io.exit;
  const t0 = Date.now();
  t.same(await gone(pids, 8000), [], 'agents and ranks stop once their lifeline closes');
  t.ok(Date.now() - t0 < 8000, `gone in ${Date.now() - t0} ms (not after the coordinator grace)`);
  const keyDirs = () => readdirSync(tmpdir()).filter((n) => n.startsWith(`ulysses-job-${upPid}-`));
  t.equal(keyDirs().length, 1, 'the killed up could not remove its job key dir');
  const lastBefore = Math.max(...readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step));

  const second = runCli(args, { timeoutMs: 120_000 });
  t.equal(second.status, 0, second.stdout + second.stderr);
  t.match(second.stdout, /resuming: .* holds an interrupted run of this job \(same config hash\)/);
  t.same(keyDirs(), [], 'the next start swept the key dir of the dead up');
  const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
  t.same(steps, Array.from({ length: 120 }, (_, i) => i + 1), `metrics.jsonl holds every step once, in order (${lastBefore} before the kill)`);
  const all = readEvents(events);
  const starts = all.flatMap((e, i) => (e.type === 'job.started' ? [i] : []));
  const resumedAt = all.slice(starts[1]).find((e) => e.type === 'job.step')!.step as number;
  t.ok(resumedAt > 1, `the second up resumed at step ${resumedAt}, not from the start`);
  await nothingLeft(t, out, [upPid]);
});

t.test('a resume at or past the end trains nothing, writes the final model if missing, and says so', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  const args = ['up', ...TINY, '--max_steps', '2', '--save_steps', '2', '--output_dir', out, '--overwrite_output_dir', 'false'];
  const first = runCli(args, { timeoutMs: 120_000 });
  t.equal(first.status, 0, first.stdout + first.stderr);
  const finalModel = readFileSync(join(out, 'model.safetensors'));
  rmSync(join(out, 'model.safetensors'));

  const again = runCli(args, { timeoutMs: 120_000 });
  t.equal(again.status, 0, again.stdout + again.stderr);
  t.match(again.stdout, /resuming: .* holds a finished run of this job \(same config hash\); it continues from .*checkpoint-2/);
  t.match(again.stdout, /job succeeded: nothing to train: .*checkpoint-2 is at step 2, the end of this job \(2 steps\); wrote the final model: .*model\.safetensors/);
  t.ok(existsSync(join(out, 'model.safetensors')) && readFileSync(join(out, 'model.safetensors')).equals(finalModel), 'the final model is back, the same bytes');
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
  t.equal(rows.length, 2, 'no step was trained again');

  const past = runCli(['up', ...TINY, '--max_steps', '1', '--warmup_steps', '0', '--resume_from_checkpoint', 'true', '--output_dir', out, '--overwrite_output_dir', 'false'], { timeoutMs: 120_000 });
  t.equal(past.status, 0, past.stdout + past.stderr);
  t.match(past.stdout, /job succeeded: nothing to train: .*checkpoint-2 is at step 2, past the end of this job \(1 steps\); the final model was already in output_dir/);
  await nothingLeft(t, out);
});
