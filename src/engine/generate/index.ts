/** Generation with a KV cache in the native engine: sessions, sampling and the generate loop. Re-exports only. */
export { InferSession } from './InferSession.js';
export { generate, type GenerateOptions, type GenerateResult } from './generate.js';
export { argmax, checkSampling, sampleToken, uniformDraw, type SamplingOptions } from './sampling.js';
