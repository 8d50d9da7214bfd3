/** failoverctl run in-process: its output captured, and its commands and options as its --help shows them. */
import { PassThrough } from 'node:stream';
import { expect, vi } from 'vitest';
import { run } from '../../src/cli/failoverctl.js';

/** failoverctl's --help (yargs prints it with console.log, not to the injected streams). */
export async function help(args: string[]): Promise<string> {
  const out = new PassThrough();
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    expect(await run([...args, '--help'], { stdout: out, stderr: out })).toBe(0);
    return log.mock.calls.map((c) => c.join(' ')).join('\n');
  } finally {
    log.mockRestore();
  }
}

/** The commands and each command's own options (global ones apart), as --help renders them. */
export async function cli(): Promise<{ global: string[]; commands: Map<string, string[]> }> {
  const top = await help([]);
  const options = (text: string): string[] => [...text.matchAll(/^ {2}(--[\w-]+)/gm)].map((m) => m[1]!);
  const global = options(top);
  const commands = new Map<string, string[]>();
  for (const m of top.matchAll(/^ {2}failoverctl ([\w-]+)/gm)) {
    commands.set(m[1]!, options(await help([m[1]!])).filter((o) => !global.includes(o)));
  }
  return { global, commands };
}

/** Runs failoverctl with captured output; stdin is not a terminal (setup needs every answer as a flag). */
export async function runInProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c) => (o += String(c)));
  stderr.on('data', (c) => (e += String(c)));
  const code = await run(args, { stdout, stderr, stdin: Object.assign(new PassThrough(), { isTTY: false }) }, env);
  return { code, stdout: o, stderr: e };
}
