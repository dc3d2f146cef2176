// The harness's view of chaos-fired/: the watcher reports each fired marker once and never takes
// the effect counts written beside the markers (or a rank's temporary file) for a marker; the
// counts are summed per fault over every rank and incarnation.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRankEffects, watchFiredMarkers } from '../../src/chaos/runChaos/firedMarkers.js';
import { FIRED_DIR, effectsPath, firedMarkerPath, type EffectCount, type FiredMarker } from '../../src/chaos/RankChaos.js';

t.test('markers are watched, effect counts are read, neither is taken for the other', async (t) => {
  const out = t.testdir();
  const dir = join(out, FIRED_DIR);
  mkdirSync(dir);
  const marker: FiredMarker = { fault: 0, kind: 'partition', rank: 1, step: 3, incarnation: 0, wallMs: 1234 };
  const counts: EffectCount[] = [
    { fault: 0, kind: 'partition', rank: 1, incarnation: 0, count: 5 },
    { fault: 0, kind: 'partition', rank: 1, incarnation: 1, count: 2 },
    { fault: 1, kind: 'slow', rank: 0, incarnation: 0, count: 3 },
  ];
  for (const e of counts) writeFileSync(effectsPath(out, e.fault, e.rank, e.incarnation), JSON.stringify(e) + '\n');
  writeFileSync(firedMarkerPath(out, 0, 1), JSON.stringify(marker) + '\n');
  // a rank's write in progress (dot-named, renamed into place when whole)
  writeFileSync(join(dir, `.${'fault-1-rank-0.json'}.tmp-99`), '{"fault": 1, "ki');

  const seen: FiredMarker[] = [];
  const stop = watchFiredMarkers(out, (m) => seen.push(m));
  try {
    await new Promise((r) => setTimeout(r, 350));
  } finally {
    stop();
  }
  t.same(seen, [marker], 'the one marker, once; no effect count or partial file reported as a marker');
  t.same([...readRankEffects(out).entries()].sort(), [[0, 7], [1, 3]], 'counts summed per fault over ranks and incarnations');
});
