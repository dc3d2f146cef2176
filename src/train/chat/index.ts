/** Chat turns over the generation engine: prompts by template, stop tokens, streamed text. Re-exports only. */
export { chatPromptIds, stopTokenIds } from './chatPrompt.js';
export { TextStream } from './TextStream.js';
