/**
 * Which backend a rank computes on: `cpu` (the native CPU kernels) or `cuda` (native/cuda), from
 * the job's `device` key (null: cuda when this addon can run its CUDA model on a visible GPU, else
 * cpu) and LOCAL_RANK (which GPU). Pure: the addon's answer arrives as an argument, so the rules
 * are testable without a GPU. Must never pick cuda where the addon cannot run it: a request it
 * cannot honour is a problem naming the cause and the fix, raised before anything starts.
 */
import { EngineError } from '../errors.js';
import type { CudaAvailability } from '../nativeBinding.js';

export type DeviceKind = 'cpu' | 'cuda';

export const DEVICE_KINDS: readonly DeviceKind[] = ['cpu', 'cuda'];

export interface DeviceChoice {
  kind: DeviceKind;
  /** The GPU (cuda) or 0 (cpu). */
  index: number;
  /** Other local ranks compute on the same GPU (more local ranks than GPUs). */
  shared: boolean;
  /** Why this backend, in words (logs and check-config). */
  reason: string;
}

export interface DeviceFacts {
  availability: CudaAvailability;
  /** The addon binds a CUDA model the trainer can run (false while only the kernels are bound). */
  cudaModel: boolean;
  /** This rank's index among the ranks of its host (LOCAL_RANK; 0 when unset). */
  localRank: number;
  /** Ranks on this host (LOCAL_WORLD_SIZE; 1 when unset). */
  localWorld: number;
}

/** Why `requested` cannot run here, with the fix; undefined when it can. */
export function deviceProblem(requested: DeviceKind | null, f: DeviceFacts): { message: string; fix: string } | undefined {
  if (requested !== 'cuda') return undefined;
  const a = f.availability;
  if (!a.built) return { message: `CUDA was not compiled into the native addon: ${a.reason}`, fix: 'use device: cpu, or install the CUDA toolkit and run `bash scripts/setup.sh` again' };
  if (a.devices < 1) return { message: `no CUDA device is visible on this machine (${a.reason || 'the driver reports none'})`, fix: 'use device: cpu, or run on a machine with an NVIDIA GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)' };
  if (!f.cudaModel) return { message: 'this build binds the CUDA kernels but not yet the CUDA model the trainer runs', fix: 'use device: cpu (the CUDA kernels are checked by scripts/device-check.sh)' };
  return undefined;
}

/** The backend for this rank; EngineError ERR_DEVICE when `requested` cannot run here. */
export function selectDevice(requested: DeviceKind | null, f: DeviceFacts): DeviceChoice {
  const problem = deviceProblem(requested, f);
  if (problem) throw new EngineError('ERR_DEVICE', `device: cuda: ${problem.message}; ${problem.fix}`);
  const gpus = f.availability.devices;
  const cudaUsable = f.availability.built && gpus > 0 && f.cudaModel;
  if (requested === 'cpu' || (requested === null && !cudaUsable)) {
    const why = requested === 'cpu' ? 'device: cpu' : `device unset and ${!f.availability.built ? 'CUDA not compiled in' : gpus < 1 ? 'no GPU visible' : 'no CUDA model bound'}`;
    return { kind: 'cpu', index: 0, shared: false, reason: why };
  }
  // ranks of a host take the GPUs in turn; more ranks than GPUs share them (staged collectives)
  const index = f.localRank % gpus;
  return { kind: 'cuda', index, shared: f.localWorld > gpus, reason: `${requested === 'cuda' ? 'device: cuda' : 'device unset and a GPU visible'}; LOCAL_RANK ${f.localRank} -> GPU ${index} of ${gpus}` };
}

/** LOCAL_RANK / LOCAL_WORLD_SIZE from an environment (0 and 1 when unset); ERR_DEVICE when malformed. */
export function localRankOf(env: Record<string, string | undefined>): { localRank: number; localWorld: number } {
  const read = (name: string, dflt: number, min: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    if (!/^\d+$/.test(v) || Number(v) < min) throw new EngineError('ERR_DEVICE', `${name}=${JSON.stringify(v)}: expected a whole number >= ${min}`);
    return Number(v);
  };
  return { localRank: read('LOCAL_RANK', 0, 0), localWorld: read('LOCAL_WORLD_SIZE', 1, 1) };
}
