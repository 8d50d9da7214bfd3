/**
 * Runs a CommonJS bundle with a V8 code cache (src/agent/boot.ts, for the agent bundle).
 *
 * Debian's Node has no code cache for its own modules and compiles a script from source at every
 * start; with the bytecode of what the last start ran cached, the agent reaches READY sooner
 * (docs/PERFORMANCE.md). The cache is an optimisation only: V8 checks it against its own version
 * and flags and the source's LENGTH (`cachedDataRejected`): a changed bundle of the same length
 * would run the old code, so the file is named by a hash of the source. A missing, unreadable or
 * rejected cache means a compile from source and a new cache (older ones are removed then), and
 * nothing about it can stop the bundle from running.
 * The cache is written `writeAfterMs` after the start (by then the start-up code has run and been
 * compiled, and is in it), atomically, once per bundle and Node.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import Module from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import { systemClock, type Clock } from '../clock.js';

/** Where src/agent/boot.ts leaves the outcome (CodeCacheRun['cache']) for the agent to log. */
export const CODE_CACHE_ENV = 'FAILOVER_AGENT_CODE_CACHE';

export interface CodeCacheRun {
  /** off: no cache directory; compiled: no cache yet; used: accepted by V8; rejected: V8 refused it */
  cache: 'off' | 'compiled' | 'used' | 'rejected';
  /** Settles once a new cache was written (true) or could not be (false); at once when none is due. */
  written: Promise<boolean>;
}

/** The cache file of `main` with this `source` in `dir`, for this Node. */
export function cacheFileOf(main: string, source: string, dir: string): string {
  const hash = createHash('sha256').update(source, 'latin1').digest('hex').slice(0, 16);
  return path.join(dir, `${path.basename(main, '.js')}.${process.version}.${process.arch}.${hash}.v8cache`);
}

/**
 * Runs `main` (a CommonJS file whose source is ASCII, as scripts/build.mjs makes the bundles) as
 * `require(main)` would, with its code cache in `cacheDir`; plainly when `cacheDir` is undefined.
 */
export function runWithCodeCache(
  main: string,
  cacheDir: string | undefined,
  writeAfterMs: number,
  opts: { clock?: Clock; /** told before `main` runs */ onCache?: (cache: CodeCacheRun['cache']) => void } = {},
): CodeCacheRun {
  const clock = opts.clock ?? systemClock;
  if (!cacheDir) {
    opts.onCache?.('off');
    Module.createRequire(main)(main);
    return { cache: 'off', written: Promise.resolve(false) };
  }
  // latin1: exact for ASCII, and the cheapest decode (a one-byte string, as V8 keeps it)
  const source = fs.readFileSync(main, 'latin1');
  const file = cacheFileOf(main, source, cacheDir);
  let cachedData: Buffer | undefined;
  try {
    cachedData = fs.readFileSync(file);
  } catch {
    // none yet, or unreadable: compiled from source, and written below
  }
  const script = new vm.Script(Module.wrap(source), { filename: main, cachedData });
  const cache = !cachedData ? 'compiled' : script.cachedDataRejected ? 'rejected' : 'used';
  const written =
    cache === 'used'
      ? Promise.resolve(false)
      : new Promise<boolean>((resolve) => {
          clock.setTimer(() => resolve(writeAtomically(file, () => script.createCachedData())), writeAfterMs);
        });
  const m = new Module(main);
  m.filename = main;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(main));
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  opts.onCache?.(cache);
  wrapper.call(m.exports, m.exports, Module.createRequire(main), m, main, path.dirname(main));
  m.loaded = true;
  return { cache, written };
}

function writeAtomically(file: string, data: () => Buffer): boolean {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, data());
    fs.renameSync(tmp, file);
  } catch {
    // a read-only or full cache directory: the next start compiles from source again
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // nothing was written
    }
    return false;
  }
  // the caches of earlier bundles or Nodes (an upgrade): nothing will use them again
  const dir = path.dirname(file);
  const [name] = path.basename(file).split('.');
  try {
    for (const f of fs.readdirSync(dir)) if (f !== path.basename(file) && f.startsWith(`${name}.`) && f.endsWith('.v8cache')) fs.rmSync(path.join(dir, f), { force: true });
  } catch {
    // left for the next write
  }
  return true;
}
