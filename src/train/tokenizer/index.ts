/**
 * Tokenizers for the data plane. `loadTokenizer(modelDir, vocabSize)` picks the model's
 * tokenizer.json when the directory has one and the built-in byte tokenizer otherwise. It must
 * never download anything.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TextTokenizer } from './TextTokenizer.js';
import { ByteTokenizer } from './ByteTokenizer.js';
import { HfTokenizer } from './HfTokenizer.js';

export type { TextTokenizer } from './TextTokenizer.js';
export { ByteTokenizer } from './ByteTokenizer.js';
export { HfTokenizer } from './HfTokenizer.js';
export { ByteLevelBpe } from './ByteLevelBpe.js';
export { copyTokenizerFiles, TOKENIZER_FILES, GENERATION_CONFIG_FILE } from './tokenizerFiles.js';

export async function loadTokenizer(modelDir: string | null, vocabSize: number): Promise<TextTokenizer> {
  if (modelDir !== null && existsSync(join(modelDir, 'tokenizer.json'))) {
    const cfgPath = join(modelDir, 'tokenizer_config.json');
    const modelCfgPath = join(modelDir, 'config.json');
    const modelConfig = existsSync(modelCfgPath)
      ? (JSON.parse(readFileSync(modelCfgPath, 'utf8')) as Record<string, unknown>)
      : undefined;
    return HfTokenizer.fromFiles(join(modelDir, 'tokenizer.json'), vocabSize, {
      tokenizerConfigPath: existsSync(cfgPath) ? cfgPath : undefined,
      modelConfig,
    });
  }
  return new ByteTokenizer(vocabSize);
}
