import t from 'tap';
import fc from 'fast-check';
import { editDistance, suggest } from '../../src/config/suggest.js';
import { LEAVES } from '../../src/config/schema.js';
import { IGNORED_KEYS } from '../../src/config/ignoredKeys.js';

// The full (m+1) x (n+1) table of the optimal string alignment distance, as the definition reads.
function referenceDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  return d[a.length]![b.length]!;
}

// suggest() without the length shortcut: every candidate's distance computed.
function referenceSuggest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase().replace(/-/g, '_');
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const limit = Math.max(2, Math.floor(c.length / 4));
    const dist = referenceDistance(w, c.toLowerCase());
    let score = dist <= limit ? dist : Infinity;
    if (score === Infinity && w.length >= 4 && c.split('_').some((p) => p === w)) score = limit + 1;
    if (score < bestScore) [best, bestScore] = [c, score];
  }
  return best;
}

const keys = [...new Set([...LEAVES.map((l) => l.path.split('.').pop()!), ...Object.keys(IGNORED_KEYS)])];
const word = fc.stringMatching(/^[a-z_-]{0,24}$/);

t.test('the three-row distance equals the full table', async (t) => {
  fc.assert(fc.property(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), (a, b) => editDistance(a, b) === referenceDistance(a, b)), { numRuns: 2000 });
  t.equal(editDistance('learning_rat', 'learning_rate'), 1);
  t.equal(editDistance('lraening', 'learning'), 2, 'a swap costs one edit');
  t.equal(editDistance('', 'abc'), 3);
});

t.test('skipping candidates too different in length changes no suggestion', async (t) => {
  fc.assert(fc.property(fc.oneof(word, fc.constantFrom(...keys).map((k) => k.slice(1)), fc.constantFrom(...keys).map((k) => k + 's')), (w) => suggest(w, keys) === referenceSuggest(w, keys)), { numRuns: 150 });
  t.equal(suggest('learning_rat', keys), 'learning_rate');
  t.equal(suggest('epochs', keys), referenceSuggest('epochs', keys));
});

t.test('a 16 kB unknown key gets no suggestion', async (t) => {
  t.equal(suggest('x'.repeat(16_000), keys), undefined);
});
