/**
 * Makes @jazzer.js/fuzzer's prebuilt libFuzzer addon load on this system, or says exactly why it
 * cannot. The linux-x64 prebuilt of 4.0.0 is linked against glibc 2.38 and GCC 13's libstdc++
 * but needs only three symbols of those versions; on older systems (Debian 12: glibc 2.36,
 * GCC 12) it fails to load. There this module builds glibcCompat.cc (those three symbols) into a
 * small shared library, marks the two version requirements of the addon weak (one flag bit each
 * in its .gnu.version_r section, so the loader no longer insists on libc.so.6 defining them),
 * and hands back the environment (LD_PRELOAD of the library) under which the addon loads.
 * Where the addon loads as shipped it changes nothing and preloads nothing.
 * It must never touch any file but that addon and its own cache folder.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The versions glibcCompat.map defines, the only requirements this module relaxes. */
const COMPAT_VERSIONS = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);
const SHT_GNU_VERNEED = 0x6ffffffe;
const VER_FLG_WEAK = 0x2;

export interface FuzzerAddon {
  /** environment additions the fuzzer process needs (empty where the addon loads as shipped) */
  env: Record<string, string>;
  /** what was done, for the log */
  note: string;
}

export class FuzzerAddonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FuzzerAddonError';
  }
}

function addonPath(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@jazzer.js/fuzzer/package.json');
  return join(dirname(pkg), 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
}

/**
 * Loads the addon in a child process (a failed dlopen must not poison this one), binding every
 * symbol at once: a weak version requirement passes the loader's check, and only binding tells
 * whether the symbols behind it are there.
 */
function tryLoad(file: string, env: Record<string, string>): string | null {
  const r = spawnSync(process.execPath, ['-e', 'process.dlopen({ exports: {} }, process.argv[1])', file], {
    env: { ...process.env, ...env, LD_BIND_NOW: '1' },
    encoding: 'utf8',
  });
  return r.status === 0 ? null : (r.stderr || `exit ${r.status}`).trim();
}

/**
 * Sets VER_FLG_WEAK on the addon's requirements of COMPAT_VERSIONS. Returns the patched bytes,
 * or null when nothing needed changing. Throws on a file that is not the ELF64 it expects.
 */
export function weakenVersionNeeds(elf: Buffer): Buffer | null {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new FuzzerAddonError('not a little-endian ELF64 file');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const section = (i: number) => {
    const h = shoff + i * shentsize;
    return { type: elf.readUInt32LE(h + 4), offset: Number(elf.readBigUInt64LE(h + 0x18)), link: elf.readUInt32LE(h + 0x28), info: elf.readUInt32LE(h + 0x2c) };
  };
  const out = Buffer.from(elf);
  let changed = false;
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_GNU_VERNEED) continue;
    const strtab = section(s.link).offset;
    const cstr = (at: number) => out.toString('latin1', at, out.indexOf(0, at));
    let need = s.offset;
    for (let n = 0; n < s.info; n++) {
      const count = out.readUInt16LE(need + 2);
      let aux = need + out.readUInt32LE(need + 8);
      for (let a = 0; a < count; a++) {
        const flags = out.readUInt16LE(aux + 4);
        if (COMPAT_VERSIONS.has(cstr(strtab + out.readUInt32LE(aux + 8))) && (flags & VER_FLG_WEAK) === 0) {
          out.writeUInt16LE(flags | VER_FLG_WEAK, aux + 4);
          changed = true;
        }
        aux += out.readUInt32LE(aux + 12);
      }
      need += out.readUInt32LE(need + 12);
    }
  }
  return changed ? out : null;
}

function buildCompatLibrary(cacheDir: string): string {
  const lib = join(cacheDir, 'libglibc-compat.so');
  const here = dirname(new URL(import.meta.url).pathname);
  // the sources sit beside this file in fuzz/compat/ (the compiled module lives in dist/fuzz/compat/)
  const srcDir = existsSync(join(here, 'glibcCompat.cc')) ? here : join(here, '..', '..', '..', 'fuzz', 'compat');
  if (existsSync(lib)) return lib;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${lib}.tmp-${process.pid}`;
  try {
    execFileSync('g++', ['-O2', '-shared', '-fPIC', '-o', tmp, join(srcDir, 'glibcCompat.cc'), `-Wl,--version-script=${join(srcDir, 'glibcCompat.map')}`], { stdio: 'pipe' });
  } catch (e) {
    throw new FuzzerAddonError(`cannot build the glibc compatibility library for the fuzzer (g++ failed: ${(e as Error).message}); install g++`);
  }
  renameSync(tmp, lib);
  return lib;
}

/** Returns what the fuzzer process needs to load its addon, patching the addon if it must. */
export function prepareFuzzerAddon(): FuzzerAddon {
  const file = addonPath();
  if (!existsSync(file)) throw new FuzzerAddonError(`@jazzer.js/fuzzer has no prebuilt addon for ${process.platform}-${process.arch} (${file})`);
  const asShipped = tryLoad(file, {});
  if (asShipped === null) return { env: {}, note: 'fuzzer addon loads as shipped' };
  if (!/GLIBC_2\.38|GLIBCXX_3\.4\.32|__isoc23_strto|ios_base_library_init/.test(asShipped)) throw new FuzzerAddonError(`the fuzzer's native addon does not load: ${asShipped}`);
  const patched = weakenVersionNeeds(readFileSync(file));
  if (patched) {
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, patched);
    renameSync(tmp, file);
  }
  const lib = buildCompatLibrary(join(dirname(file), '..', '..', '..', '.cache', 'ulysses-fuzz'));
  const env = { LD_PRELOAD: lib };
  const withCompat = tryLoad(file, env);
  if (withCompat !== null) throw new FuzzerAddonError(`the fuzzer's native addon does not load even with the glibc compatibility library: ${withCompat}`);
  return { env, note: `fuzzer addon loads with ${lib} preloaded (this system's glibc/libstdc++ predate the prebuilt's)` };
}
