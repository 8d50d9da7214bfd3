/** Human or JSON output for failoverctl, written to injected streams. */
import { AgentError } from '../errors.js';

export interface OutputStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export class Output {
  constructor(
    private readonly streams: OutputStreams,
    private readonly json: () => boolean,
  ) {}

  /** Prints `human` lines, or `data` as one JSON document with --json. */
  result(human: string, data: unknown): void {
    if (this.json()) this.streams.stdout.write(JSON.stringify(data, jsonReplacer, 2) + '\n');
    else this.streams.stdout.write(human.endsWith('\n') ? human : human + '\n');
  }

  error(err: unknown): void {
    const code = err instanceof AgentError ? err.code : 'INTERNAL';
    const message = err instanceof Error ? err.message : String(err);
    if (this.json()) this.streams.stdout.write(JSON.stringify({ ok: false, error: { code, message } }) + '\n');
    this.streams.stderr.write(`failoverctl: ${message}${code !== 'INTERNAL' && code !== 'USAGE' ? ` [${code}]` : ''}\n`);
  }
}

/** BigInt and Buffer never break JSON output. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer') return undefined;
  return value;
}
