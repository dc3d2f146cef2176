// The run-time library search of the CUDA engine (native/src/device/dynlib.cc), CUDA-free: the
// candidate order for cuBLAS and NCCL under the override variables, UA_CUDA_LIBRARY_PATH, CUDA_HOME
// and a Python virtual environment holding NVIDIA's wheels (fake files in a temporary folder),
// and the error a failed load gives. The addon reads the environment at each call.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceLibraryCandidates, deviceLibraryLoad } from '../../src/engine/device/index.js';

const VARS = ['UA_CUBLAS_LIBRARY', 'UA_NCCL_LIBRARY', 'UA_CUDA_LIBRARY_PATH', 'CUDA_HOME', 'CUDA_PATH', 'VIRTUAL_ENV'];

/** Runs `body` with `vars` set (and the other search variables unset), then restores the environment. */
function withEnv<T>(vars: Record<string, string>, body: () => T): T {
  const saved = Object.fromEntries(VARS.map((k) => [k, process.env[k]]));
  for (const k of VARS) delete process.env[k];
  Object.assign(process.env, vars);
  try {
    return body();
  } finally {
    for (const k of VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

const dir = mkdtempSync(join(tmpdir(), 'ua-dynlib-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('an override file is the only candidate; an override folder gives its sonames', async (t) => {
  withEnv({ UA_CUBLAS_LIBRARY: '/opt/x/libcublas.so.13' }, () => {
    t.same(deviceLibraryCandidates('cublas'), ['/opt/x/libcublas.so.13']);
    t.notSame(deviceLibraryCandidates('nccl'), ['/opt/x/libcublas.so.13'], 'the cuBLAS override leaves NCCL alone');
  });
  withEnv({ UA_NCCL_LIBRARY: dir, UA_CUDA_LIBRARY_PATH: '/elsewhere' }, () => {
    t.same(deviceLibraryCandidates('nccl'), [`${dir}/libnccl.so.2`, `${dir}/libnccl.so`], 'a folder override: its sonames, nothing else');
  });
});

t.test('without overrides: UA_CUDA_LIBRARY_PATH, the bare sonames, CUDA_HOME, then the wheels', async (t) => {
  const venv = join(dir, 'venv');
  const wheel = join(venv, 'lib/python3.12/site-packages/nvidia/cublas/lib');
  mkdirSync(wheel, { recursive: true });
  writeFileSync(join(wheel, 'libcublas.so.13'), '');
  const c = withEnv({ UA_CUDA_LIBRARY_PATH: '/a:/b', CUDA_HOME: '/cuda', VIRTUAL_ENV: venv }, () => deviceLibraryCandidates('cublas'));
  const at = (p: string) => c.indexOf(p);
  t.same(c.slice(0, 6), ['/a/libcublas.so.13', '/a/libcublas.so.12', '/a/libcublas.so', '/b/libcublas.so.13', '/b/libcublas.so.12', '/b/libcublas.so'], 'the path folders first, in order');
  t.same(c.slice(6, 9), ['libcublas.so.13', 'libcublas.so.12', 'libcublas.so'], 'then the loader\'s own search');
  t.ok(at('/cuda/lib64/libcublas.so.13') > 8, 'then CUDA_HOME');
  t.ok(at(join(wheel, 'libcublas.so.13')) > at('/cuda/lib64/libcublas.so.13'), 'then the wheel of the virtual environment');
  t.ok(at(join(venv, 'lib/python3.12/site-packages/torch/lib/libcublas.so.13')) > at(join(wheel, 'libcublas.so.13')), 'then torch/lib there');
  const n = withEnv({}, () => deviceLibraryCandidates('nccl'));
  t.same(n.slice(0, 2), ['libnccl.so.2', 'libnccl.so']);
  t.ok(n.includes('/usr/local/cuda/lib64/libnccl.so.2'));
});

t.test('a load that finds nothing names the override and every candidate tried', async (t) => {
  const missing = join(dir, 'no-such-libnccl.so.2');
  const r = withEnv({ UA_NCCL_LIBRARY: missing }, () => deviceLibraryLoad('nccl'));
  t.equal(r.path, '');
  t.same(r.tried, [missing]);
  t.match(r.error, new RegExp(`NCCL not found at UA_NCCL_LIBRARY=${missing}`));
  const bad = join(dir, 'libcublas.so.13');
  writeFileSync(bad, 'not an ELF file');
  const r2 = withEnv({ UA_CUBLAS_LIBRARY: bad }, () => deviceLibraryLoad('cublas'));
  t.match(r2.error, /cuBLAS not found at UA_CUBLAS_LIBRARY=.*last error: /, 'the loader\'s own error is kept');
  t.throws(() => deviceLibraryCandidates('cudnn' as 'nccl'), { code: 'ERR_ARG', message: /expected 'cublas' or 'nccl'/ });
});
