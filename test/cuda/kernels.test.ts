// Every CUDA kernel op against the CPU kernel of the same name on the same inputs, with the cases
// and tolerances of bench/cudaKernels.ts (the device check runs the same). A GPU test: it skips,
// saying why, where no CUDA device is visible or CUDA was not compiled into the addon.
import t from 'tap';
import { KERNEL_CASES, checkKernel } from '../../bench/cudaKernels.js';
import { cudaAvailability } from '../../src/engine/device/index.js';

const a = cudaAvailability();
const skip = !a.built ? `CUDA not compiled into the addon: ${a.reason}` : a.devices < 1 ? `no CUDA device visible: ${a.reason}` : false;
if (skip) t.comment(`GPU tests skipped: ${skip}`);

for (const c of KERNEL_CASES) {
  t.test(`${c.op}: CUDA matches the CPU kernel`, { skip }, async (t) => {
    const r = await checkKernel(c, 0);
    t.ok(r.ok, `worst |gpu - cpu| / tolerance = ${r.worst.toFixed(3)}`);
  });
}
