/**
 * Appends raw little-endian array bytes to one file through a 1 MiB buffer (synchronous: the
 * token cache is written on a worker thread). Counts what it wrote so the caller can check sizes.
 * `close(sync)` flushes, optionally fsyncs, and is safe to call twice; it must never leave a
 * descriptor open after a failure the caller handles.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';

const BUFFER_BYTES = 2 ** 20;

export class BinWriter {
  private fd: number | null;
  private readonly buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  private readonly f64 = new Float64Array(1);
  private readonly i32 = new Int32Array(1);
  /** bytes written so far (flushed or buffered) */
  bytes = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'wx');
  }

  write(view: ArrayBufferView): void {
    const src = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    this.bytes += src.length;
    if (src.length >= BUFFER_BYTES) {
      this.flush();
      this.writeFully(src);
      return;
    }
    if (this.used + src.length > BUFFER_BYTES) this.flush();
    this.buf.set(src, this.used);
    this.used += src.length;
  }

  writeF64(x: number): void {
    this.f64[0] = x;
    this.write(this.f64);
  }

  writeI32(x: number): void {
    this.i32[0] = x;
    this.write(this.i32);
  }

  private writeFully(src: Uint8Array): void {
    let done = 0;
    while (done < src.length) done += writeSync(this.fd!, src, done, Math.min(src.length - done, 2 ** 30));
  }

  private flush(): void {
    if (this.used === 0) return;
    this.writeFully(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  close(sync: boolean): void {
    if (this.fd === null) return;
    const fd = this.fd;
    try {
      this.flush();
      if (sync) fsyncSync(fd);
    } finally {
      this.fd = null;
      closeSync(fd);
    }
  }
}
