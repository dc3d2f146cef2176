/**
 * "Did you mean" for unknown keys: the closest candidate by edit distance, or none when nothing
 * is plausibly close (a wild guess is worse than no suggestion). Pure; never throws.
 */
export function editDistance(a: string, b: string): number {
  // Optimal string alignment distance (Levenshtein plus adjacent transpositions), since
  // swapped letters are the commonest typo. Three rows (the transposition looks two back), so
  // a long word costs time in proportion to its length, never an (m+1) x (n+1) table.
  const m = a.length, n = b.length;
  let back2 = new Array<number>(n + 1).fill(0);
  let back1 = Array.from({ length: n + 1 }, (_, j) => j);
  let row = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= m; i++) {
    row[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(back1[j]! + 1, row[j - 1]! + 1, back1[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, back2[j - 2]! + 1);
      row[j] = v;
    }
    [back2, back1, row] = [back1, row, back2];
  }
  return back1[n]!;
}

export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase().replace(/-/g, '_');
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    // Allow about one edit per four characters (at least 2), so `lr_rate` does not become
    // `lora_rank` but `learning_rat` becomes `learning_rate`.
    const limit = Math.max(2, Math.floor(c.length / 4));
    // The distance is at least the difference in length: a word that long is never within the
    // limit, so it is not computed (a hostile config's 16 kB key costs nothing).
    const dist = Math.abs(w.length - c.length) > limit ? Infinity : editDistance(w, c.toLowerCase());
    let score = dist <= limit ? dist : Infinity;
    // A word that is a whole underscore-separated part of a key (`epochs` in `num_train_epochs`)
    // is also a plausible near miss.
    if (score === Infinity && w.length >= 4 && c.includes(w) && c.split('_').some((part) => part === w)) score = limit + 1;
    if (score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}
