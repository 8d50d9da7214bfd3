/**
 * docs/CONTROL.md against the code it documents (src/control/protocol.ts, server.ts and
 * src/cli/status-verdict.ts), so the protocol description cannot drift: the commands, the
 * request examples, the misspelt example's refusal, the limits and the status exit codes.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StatusExit } from '../../src/cli/status-verdict.js';
import { CONTROL_COMMANDS, controlRequestSchema } from '../../src/control/protocol.js';
import { DEFAULT_SOCKET_MODE, IDLE_TIMEOUT_MS, MAX_REQUEST_BYTES, parseRequest } from '../../src/control/server.js';
import { ExitCode } from '../../src/errors.js';

const doc = fs.readFileSync(new URL('../../docs/CONTROL.md', import.meta.url), 'utf8');
const section = (title: string): string => doc.split(/^## /m).find((s) => s.startsWith(title))!;

describe('docs/CONTROL.md', () => {
  it('the request table has one row per command the schema accepts, each example accepted as written', () => {
    const rows = [...section('Requests').matchAll(/^\| `(\{"cmd":"(\w+)".*?\})` \|/gm)];
    expect(rows.map((r) => r[2]).sort()).toEqual([...CONTROL_COMMANDS].sort());
    for (const [, example] of rows) {
      // `{...}` stands for "the same args as above".
      if (example!.includes('{...}')) continue;
      expect(controlRequestSchema.safeParse(JSON.parse(example!)).success, example).toBe(true);
    }
  });

  it('names the admin arguments the schema has, and the misspelt request it shows is refused as it says', () => {
    const failback = controlRequestSchema.options.find((o) => o.shape.cmd.value === 'failback')!;
    const args = Object.keys((failback.shape as { args: { unwrap(): { shape: object } } }).args.unwrap().shape);
    for (const a of args) expect(section('Requests'), a).toContain(`\`${a}\``);
    const said = /misspelt `(\{[^`]+\})` is refused\s*\(`([^`]+)`\)/.exec(section('Requests'))!;
    expect(() => parseRequest(said[1]!)).toThrow(said[2]!);
    // And the example command line is a request the agent takes.
    const example = /printf '(\{[^']+\})\\n'/.exec(doc)!;
    expect(() => parseRequest(example[1]!)).not.toThrow();
  });

  it('states the limits and the socket mode the server uses', () => {
    expect(section('Framing')).toContain(`at most ${MAX_REQUEST_BYTES.toLocaleString('en-US')} bytes`);
    expect(section('Framing')).toContain(`idle for ${IDLE_TIMEOUT_MS / 1000} s is closed`);
    expect(section('Where')).toContain(`Mode 0${DEFAULT_SOCKET_MODE.toString(8)}`);
  });

  it('lists the status exit codes: the verdicts and the common ones', () => {
    const codes = [...section('`failoverctl status` exit codes').matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    expect(codes.sort((a, b) => a - b)).toEqual([...Object.values(StatusExit), ExitCode.UNAVAILABLE, ExitCode.NOPERM, ExitCode.CONFIG].sort((a, b) => a - b));
  });
});
