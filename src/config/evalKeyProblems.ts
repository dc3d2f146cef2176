/**
 * Cross-key checks of the evaluation, SFT masking and output-dir keys (the rest of the cross
 * checks live in loadJobConfig.ts): combinations LLaMA-Factory refuses, keys that only act with
 * another key, and evaluation without held-out data. Pure: reads no files.
 */
import type { ConfigProblem } from './ConfigError.js';

/** A resolved key as loadJobConfig holds it: value, where it came from, whether a layer set it. */
export interface KeySetting {
  value: unknown;
  source: string;
  explicit: boolean;
}

/** Evaluation, masking and output-dir keys that contradict each other or the stage. */
export function evalKeyProblems(s: (path: string) => KeySetting): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const v = <T>(p: string) => s(p).value as T;
  const stage = v<string>('stage');
  for (const k of ['train_on_prompt', 'mask_history'])
    if (s(k).explicit && v(k) === true && stage !== 'sft') problems.push({ key: k, source: s(k).source, value: true, message: `only has an effect with stage: sft (it is ${stage})`, fix: 'remove it or set stage: sft' });
  if (v('train_on_prompt') === true && v('mask_history') === true)
    problems.push({ key: 'mask_history', source: s('mask_history').source, value: true, message: 'cannot be combined with train_on_prompt (LLaMA-Factory refuses it too)', fix: 'keep one of them' });
  const valSize = v<number>('val_size');
  const evalSets = v<string[]>('eval_dataset');
  if (valSize > 1 && !Number.isInteger(valSize))
    problems.push({ key: 'val_size', source: s('val_size').source, value: valSize, message: 'above 1 it is a count of held-out items, so it must be a whole number', fix: 'use a share below 1 (e.g. 0.1) or a whole count' });
  if (valSize > 0 && evalSets.length > 0)
    problems.push({ key: 'val_size', source: s('val_size').source, value: valSize, message: 'cannot be combined with eval_dataset (LLaMA-Factory refuses it too)', fix: 'split the training data (val_size) or name eval_dataset, not both' });
  const strategy = v<string>('eval_strategy');
  const builtin = v<string[]>('dataset').length > 0 && v<string[]>('dataset').every((d) => d.startsWith('builtin:'));
  const wantsEval = strategy !== 'no' || v('do_eval') === true;
  if (builtin && (valSize > 0 || evalSets.length > 0)) {
    const k = valSize > 0 ? 'val_size' : 'eval_dataset';
    problems.push({ key: k, source: s(k).source, value: v(k), message: 'a built-in task evaluates on its own held-out examples (another seed stream)', fix: `remove ${k}` });
  }
  if (wantsEval && valSize === 0 && evalSets.length === 0 && !builtin) {
    const k = strategy !== 'no' ? 'eval_strategy' : 'do_eval';
    problems.push({ key: k, source: s(k).source, value: v(k), message: 'evaluation needs held-out data', fix: 'set val_size (e.g. 0.1) or eval_dataset' });
  }
  if (s('eval_steps').explicit && v('eval_steps') !== null && strategy !== 'steps')
    problems.push({ key: 'eval_steps', source: s('eval_steps').source, value: v('eval_steps'), message: `only has an effect with eval_strategy: steps (it is ${strategy})`, fix: 'add eval_strategy: steps or remove it' });
  const evalSteps = v<number | null>('eval_steps');
  if (evalSteps !== null && evalSteps > 1 && !Number.isInteger(evalSteps))
    problems.push({ key: 'eval_steps', source: s('eval_steps').source, value: evalSteps, message: 'must be a whole number of steps, or a fraction below 1 of the total steps', fix: `e.g. ${Math.round(evalSteps)}` });
  if (v('compute_accuracy') === true && stage === 'dpo')
    problems.push({ key: 'compute_accuracy', source: s('compute_accuracy').source, value: true, message: 'is token accuracy of pt/sft; dpo reports eval_rewards/accuracies', fix: 'remove it' });
  if (v('compute_accuracy') === true && stage === 'kto')
    problems.push({ key: 'compute_accuracy', source: s('compute_accuracy').source, value: true, message: 'is token accuracy of pt/sft; kto reports eval_rewards/chosen, eval_rewards/rejected and eval_kl', fix: 'remove it' });
  if (v('eval_on_each_dataset') === true && evalSets.length === 0)
    problems.push({ key: 'eval_on_each_dataset', source: s('eval_on_each_dataset').source, value: true, message: 'needs eval_dataset (the datasets to evaluate one by one)', fix: 'name eval_dataset or remove it' });
  if (v('overwrite_output_dir') === true && v('resume_from_checkpoint') === true)
    problems.push({ key: 'resume_from_checkpoint', source: s('resume_from_checkpoint').source, value: true, message: 'looks for the latest checkpoint in output_dir, which overwrite_output_dir clears first', fix: 'drop one of them (or give the checkpoint path)' });
  return problems;
}
