// The arithmetic peak probes run and report consistent figures (never a speed assertion): fp32
// on any x86-64 CPU this addon runs on, bf16 exactly when the CPU has AVX512-BF16.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { measurePeak } from '../../src/engine/ops/peak.js';

const cpuHasBf16 = /\bavx512_bf16\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));

t.test('fp32 FMA probe', async (t) => {
  const r = await measurePeak('fp32', 2, { secondsPerRep: 0.02, reps: 2 });
  t.ok(r.available, 'available');
  t.match(r.isa, /^(avx512|avx2)$/, `chains of ${r.isa} FMAs`);
  t.ok(r.gflops > 0 && Number.isFinite(r.gflops), `a positive rate (${r.gflops.toFixed(1)} GFLOP/s, not asserted against any speed)`);
  t.equal(r.threads, 2, 'on the threads asked for');
  t.equal(r.reps, 2, 'the reps asked for');
  // how long a rep lasts depends on the machine's load during calibration: only that it was timed
  t.ok(r.seconds > 0 && Number.isFinite(r.seconds), `each rep was timed (${(r.seconds * 1e3).toFixed(1)} ms)`);
});

t.test(`bf16 dot-product probe (this CPU ${cpuHasBf16 ? 'has' : 'lacks'} AVX512-BF16)`, async (t) => {
  const r = await measurePeak('bf16', 1, { secondsPerRep: 0.02, reps: 1 });
  t.equal(r.available, cpuHasBf16, 'available exactly when the CPU has the instructions');
  if (r.available) t.ok(r.isa === 'avx512bf16' && r.gflops > 0, `vdpbf16ps chains at ${r.gflops.toFixed(1)} GFLOP/s`);
  else t.equal(r.gflops, 0, 'no rate without the instructions');
});

t.test('bad arguments give coded errors', async (t) => {
  await t.rejects(measurePeak('fp32', 0), { code: 'ERR_ARG' }, 'zero threads');
  await t.rejects(measurePeak('fp16' as 'fp32', 1), { code: 'ERR_ARG' }, 'unknown kind');
  await t.rejects(measurePeak('fp32', 1, { secondsPerRep: 0 }), { code: 'ERR_ARG' }, 'zero seconds');
});
