/**
 * The rows of metrics.jsonl as its readers need them: each parseable line with a numeric `step`
 * and its text. Read by `up` (which step a continued run last logged) and by the coordinator
 * (which rows a step done again replaces). A torn last line or a blank line is skipped, never
 * thrown: the file is appended to by a process that may have been killed mid-write.
 */

export interface MetricsRowStep {
  step: number;
  line: string;
}

export function metricsRowSteps(text: string): MetricsRowStep[] {
  return text.split('\n').flatMap((line) => {
    if (!line.trim()) return [];
    try {
      const step = (JSON.parse(line) as { step?: unknown }).step;
      return typeof step === 'number' ? [{ step, line }] : [];
    } catch {
      return [];
    }
  });
}
