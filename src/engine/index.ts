/**
 * Public API of the native engine: tensors, coded errors, thread control, the kernel wrappers,
 * the Llama-family model and safetensors I/O. Re-exports only; must never add behaviour here.
 */
export * from './errors.js';
export * from './Tensor.js';
export * from './threads.js';
export * from './ops/matmul.js';
export * from './ops/f16.js';
export * from './ops/peak.js';
export * from './ops/basic.js';
export * from './ops/attention.js';
export * from './ops/optim.js';
export * from './modelConfig.js';
export * from './model/index.js';
export * from './generate/index.js';
export * from './nativeCalls.js';
export * from './modelConfigProblems.js';
export * from './ropeConfig.js';
export * from './describeModel.js';
export * from './safetensors.js';
export * from './Communicator.js';
export * from './headSplit.js';
export * from './stores.js';
export * from './device/index.js';
