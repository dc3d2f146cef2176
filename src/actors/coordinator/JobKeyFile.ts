/**
 * The job key file the coordinator hands to its node agents: an existing file is used as it is (a
 * key made beforehand, e.g. a Kubernetes secret); otherwise a fresh key is written (mode 0600)
 * to the given path or to a private temporary directory named after this process's pid
 * (`ulysses-job-<pid>-*`, so the next job sweeps it if this one is killed: sweepStale.ts), and
 * removed again by close(). Never removes a file it did not create.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJobKeys, readJobKeys, writeJobKeys, type JobKeys } from '../../transport/keys.js';

export class JobKeyFile {
  private constructor(
    readonly path: string,
    readonly keys: JobKeys,
    /** what close() removes: the file it wrote, or its private directory */
    private readonly created: { file?: string; dir?: string },
  ) {}

  static async open(path?: string): Promise<JobKeyFile> {
    if (path && existsSync(path)) return new JobKeyFile(path, await readJobKeys(path), {});
    const keys = createJobKeys();
    if (path) {
      await writeJobKeys(path, keys);
      return new JobKeyFile(path, keys, { file: path });
    }
    const dir = await mkdtemp(join(tmpdir(), `ulysses-job-${process.pid}-`));
    const file = join(dir, 'job.key');
    await writeJobKeys(file, keys);
    return new JobKeyFile(file, keys, { dir });
  }

  /** Removes what open() created; safe to call twice. */
  async close(): Promise<void> {
    if (this.created.dir) await rm(this.created.dir, { recursive: true, force: true });
    if (this.created.file) await rm(this.created.file, { force: true });
  }
}
