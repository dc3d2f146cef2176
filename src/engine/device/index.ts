/**
 * The device seam: which backend a rank computes on, what the addon says about CUDA, and how the
 * ranks of an NCCL communicator agree on its id. Re-exports only.
 */
export * from './selectDevice.js';
export * from './deviceFacts.js';
export * from './ncclBootstrap.js';
