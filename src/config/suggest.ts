/**
 * "Did you mean" for unknown keys: the closest candidate by edit distance, or none when nothing
 * is plausibly close (a wild guess is worse than no suggestion). Pure; never throws.
 */
export function editDistance(a: string, b: string): number {
  // Optimal string alignment distance (Levenshtein plus adjacent transpositions), since
  // swapped letters are the commonest typo.
  const m = a.length, n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => Array.from({ length: n + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= m; i++)
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  return d[m]![n]!;
}

export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase().replace(/-/g, '_');
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const dist = editDistance(w, c.toLowerCase());
    // Allow about one edit per four characters (at least 2), so `lr_rate` does not become
    // `lora_rank` but `learning_rat` becomes `learning_rate`.
    const limit = Math.max(2, Math.floor(c.length / 4));
    let score = dist <= limit ? dist : Infinity;
    // A word that is a whole underscore-separated part of a key (`epochs` in `num_train_epochs`)
    // is also a plausible near miss.
    if (score === Infinity && w.length >= 4 && c.split('_').some((part) => part === w)) score = limit + 1;
    if (score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}
