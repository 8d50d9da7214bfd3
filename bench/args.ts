/**
 * Flag parsing shared by the benchmarks, on Node's own util.parseArgs: `--flag value` and
 * `--flag=value`, unknown flags refused. Every bench has --out, --perf-md, --no-write and --help.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';

export class UsageError extends Error {}

export interface CommonOptions {
  out: string;
  perfMd: string;
  write: boolean;
  /** where relative defaults are taken from: $BENCH_ROOT or the working directory */
  root: string;
}

/**
 * Parses `argv` against the bench's own string flags (names without the dashes), its boolean
 * switches, and the common ones. `help` is true for -h/--help. Throws UsageError on an unknown
 * flag or a missing value.
 */
export function parseBenchArgs<K extends string, B extends string = never>(
  argv: string[],
  flags: readonly K[],
  defaultOut: string,
  switches: readonly B[] = [],
): { values: Partial<Record<K, string>>; flags: Record<B, boolean>; common: CommonOptions; help: boolean } {
  const own: Record<string, { type: 'string' | 'boolean' }> = {
    ...Object.fromEntries(flags.map((f) => [f, { type: 'string' as const }])),
    ...Object.fromEntries(switches.map((f) => [f, { type: 'boolean' as const }])),
  };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: { ...own, out: { type: 'string' }, 'perf-md': { type: 'string' }, 'no-write': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const root = process.env.BENCH_ROOT ?? process.cwd();
  const str = (k: string): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const out = str('out');
  const perfMd = str('perf-md');
  return {
    values: Object.fromEntries(flags.filter((f) => str(f) !== undefined).map((f) => [f, str(f)])) as Partial<Record<K, string>>,
    flags: Object.fromEntries(switches.map((f) => [f, values[f] === true])) as Record<B, boolean>,
    common: {
      out: out !== undefined ? path.resolve(out) : path.join(root, defaultOut),
      perfMd: perfMd !== undefined ? path.resolve(perfMd) : path.join(root, 'docs/PERFORMANCE.md'),
      write: values['no-write'] !== true,
      root,
    },
    help: values.help === true,
  };
}

/** An integer flag: its default when absent, else a whole number >= min. */
export function intFlag(flag: string, v: string | undefined, min: number, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min) throw new UsageError(`--${flag} needs an integer >= ${min}, got ${v}`);
  return n;
}

/** Runs a bench's option parser; a UsageError prints `bench NAME: message` and the usage, and yields exit code 64. */
export function parseOrUsage<T>(name: string, usage: string, parse: () => T): T | 64 {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`bench ${name}: ${err.message}\n${usage}`);
    return 64;
  }
}
