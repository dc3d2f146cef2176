// LoRA under Ulysses sequence parallelism: two real rank processes on loopback (TCP), each with
// its shard of one packed sequence (uneven length, so padded), activation checkpointing and LoRA
// dropout under a fixed key; the reduced adapter gradients and the loss must equal one process on
// the whole sequence (||g_sp - g_ref|| / ||g_ref|| < 1e-4 per tensor), and the base gradients stay
// zero. The dropout masks are keyed by global token, so the shards draw what one process draws.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validTokenCount } from '../../src/train/data/shard.js';
import { sequenceOf } from '../sp/fixtures/cases.js';
import { LORA_CASE, loraModel } from './fixtures/loraSpCase.js';

const RTOL = 1e-4;
const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'loraSpRank.ts');

function runRanks(t: Tap.Test, world: number): Promise<{ results: Record<string, unknown>[]; grads: Float32Array[]; logs: string[]; codes: (number | null)[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'ua-lora-sp-'));
  const children: ChildProcess[] = [];
  const kill = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  };
  t.teardown(() => {
    kill();
    rmSync(dir, { recursive: true, force: true });
  });
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' };
  delete env.NODE_OPTIONS;
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  const results: Record<string, unknown>[] = [];
  const logs: string[] = [];
  const codes: (number | null)[] = [];
  return new Promise((resolve, reject) => {
    let left = world;
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`ranks did not finish in 90 s:\n${logs.join('\n')}`));
    }, 90_000);
    for (let rank = 0; rank < world; rank++) {
      const child = spawn(process.execPath, [...(loader.length ? loader : process.execArgv), fixture, JSON.stringify({ rank, world, dir, timeoutMs: 30_000 })], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) {
          const line = buf.slice(0, nl);
          logs.push(`rank ${rank}: ${line.slice(0, 400)}`);
          const m = /\] result (.*)$/.exec(line);
          if (m) results[rank] = JSON.parse(m[1]!);
        }
      });
      child.stderr!.on('data', (d: Buffer) => logs.push(`rank ${rank} stderr: ${d.toString().slice(0, 800)}`));
      child.on('close', (code) => {
        codes[rank] = code;
        if (--left > 0) return;
        clearTimeout(timer);
        try {
          const grads = Array.from({ length: world }, (_, r) => {
            const b = readFileSync(join(dir, `rank${r}.f32`));
            return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
          });
          resolve({ results, grads, logs, codes });
        } catch (e) {
          reject(new Error(`${(e as Error).message}\n${logs.join('\n')}`));
        }
      });
    }
  });
}

t.test('LoRA with P = 2 (GQA, padding, packed documents, checkpointing, dropout) equals one process', async (t) => {
  const run = await runRanks(t, 2);
  t.same(run.codes, [0, 0], run.codes.every((c) => c === 0) ? 'both ranks exited with 0' : `exit codes ${run.codes.join(', ')}\n${run.logs.join('\n')}`);
  const ref = await loraModel();
  const seq = sequenceOf(LORA_CASE, 0);
  const r = await ref.forward({ tokens: seq.tokens, labels: seq.labels, positions: seq.positions, docLens: seq.docLens, normalizer: validTokenCount(seq), dropoutKey: LORA_CASE.dropoutKey });
  await ref.backward();
  const loss = run.results[0]!.loss as number;
  const lossErr = Math.abs(loss - r.loss) / Math.abs(r.loss);
  t.ok(lossErr < RTOL, `loss ${loss} vs single process ${r.loss}: relative error ${lossErr.toExponential(2)}`);
  t.equal(run.results[1]!.loss, loss, 'both ranks report the same loss');
  t.equal(Buffer.compare(Buffer.from(run.grads[0]!.buffer), Buffer.from(run.grads[1]!.buffer)), 0, 'both ranks hold the same reduced adapter gradient bits');
  t.same(run.results.map((x) => x.baseMax), [0, 0], 'no base gradient on either rank');
  const l = ref.lora!;
  let worst = 0;
  let worstName = '';
  for (const v of l.views) {
    const a = run.grads[0]!.subarray(v.offset, v.offset + v.numel);
    const b = l.grads.subarray(v.offset, v.offset + v.numel);
    let num = 0;
    let den = 0;
    for (let i = 0; i < a.length; i++) {
      num += (a[i]! - b[i]!) ** 2;
      den += b[i]! ** 2;
    }
    const e = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
    if (!(e <= worst)) {
      worst = e;
      worstName = v.name;
    }
  }
  t.ok(worst < RTOL, `every adapter gradient (${l.views.length} tensors) within ${RTOL}: worst ${worstName} ${worst.toExponential(2)}`);
});
