/**
 * The addon's answers about CUDA for the device seam (selectDevice.ts): availability, devices,
 * the run-time library search. Thin typed wrappers over bind_cuda.cc; must never throw where a
 * GPU or a library is merely absent (those are answers).
 */
import { native } from '../native.js';
import type { CudaAvailability, CudaDeviceInfo, DeviceLibraryStatus } from '../nativeBinding.js';
import { localRankOf, type DeviceFacts } from './selectDevice.js';

export function cudaAvailability(): CudaAvailability {
  return native().cudaAvailability();
}

export function cudaDeviceInfo(device: number): CudaDeviceInfo {
  return native().cudaDeviceInfo(device);
}

/** Loads (or retries) cuBLAS and NCCL; where each came from, or why not. */
export function cudaLibraries(): DeviceLibraryStatus[] {
  return native().cudaLibraries();
}

/** The files the addon tries, in order, for a run-time library in this environment. */
export function deviceLibraryCandidates(library: 'cublas' | 'nccl'): string[] {
  return native().deviceLibraryCandidates(library);
}

export function deviceLibraryLoad(library: 'cublas' | 'nccl'): { path: string; error: string; tried: string[] } {
  return native().deviceLibraryLoad(library);
}

/** Everything selectDevice needs, read from the addon and `env`. */
export function deviceFacts(env: Record<string, string | undefined> = process.env): DeviceFacts {
  // no binding of the CUDA model yet: the auto default stays on cpu (selectDevice)
  return { availability: cudaAvailability(), cudaModel: false, ...localRankOf(env) };
}
