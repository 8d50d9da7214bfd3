/**
 * Read and validate `/etc/failover-agent/<instance>.toml` (SPEC §8). The agent and
 * `failoverctl check-config` share this, so both report exactly the same problems: all of them at
 * once, each as `FILE:LINE: key: message`.
 */
import fs from 'node:fs';
import { parse, TomlError } from 'smol-toml';

import { AgentError, ExitCode } from '../errors.js';
import { KeyLocator } from './locate.js';
import { checkConfig, type Config } from './schema.js';

export type { Config, HostPort, Role } from './schema.js';
export { configPathForInstance, instanceFromPath, DEFAULT_CONFIG_DIR } from './schema.js';

export interface ConfigIssue {
  file: string;
  /** Dotted key path, e.g. "dns.timeout" or "health.targets.1"; "" for a TOML syntax error or an unreadable file. */
  key: string;
  /** 1-based line, when known (a missing key points at its table header). */
  line?: number;
  message: string;
}

export type ConfigErrorCode = 'CONFIG_INVALID' | 'CONFIG_UNREADABLE';

/**
 * Exit 78 (EX_CONFIG). `new ConfigError(issues)` lists the issues one per line as the message;
 * `new ConfigError(message, issues?)` is for problems outside any one file (e.g. which file to use).
 */
export class ConfigError extends AgentError {
  readonly issues: ConfigIssue[];
  constructor(what: string | ConfigIssue[], issues?: ConfigIssue[], code: ConfigErrorCode = 'CONFIG_INVALID') {
    const list = typeof what === 'string' ? (issues ?? []) : what;
    super(code, typeof what === 'string' ? what : list.map(formatIssue).join('\n'), ExitCode.CONFIG);
    this.issues = list;
  }
}

/** `FILE:LINE: key: message` (line and key left out when unknown / empty). */
export function formatIssue(i: ConfigIssue): string {
  return `${i.file}${i.line !== undefined ? `:${i.line}` : ''}: ${i.key !== '' ? `${i.key}: ` : ''}${i.message}`;
}

/** Read, parse and validate; throws ConfigError (exit 78) listing every problem. */
export function loadConfig(file: string, opts: { text?: string } = {}): Config {
  let text = opts.text;
  if (text === undefined) {
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `cannot read: ${(err as Error).message}`;
      throw new ConfigError([{ file, key: '', message: reason }], undefined, 'CONFIG_UNREADABLE');
    }
  }
  const { config, issues } = validateConfig(text, file);
  if (!config || issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** Validate config text without throwing; `config` is set only when there are no issues. */
export function validateConfig(text: string, file: string): { config?: Config; issues: ConfigIssue[] } {
  const parsed = parseTolerant(text.replace(/^\uFEFF/, ''));
  const issues: ConfigIssue[] = parsed.syntax.map((e) => ({
    file,
    key: '',
    line: e.line,
    message: `TOML syntax error (column ${e.column}): ${e.message}`,
  }));

  if (parsed.doc) {
    const { config, problems } = checkConfig(parsed.doc, file);
    const locator = new KeyLocator(parsed.text);
    for (const p of problems) {
      // A key on a line dropped for a syntax error is "missing" only as a consequence of it.
      if (p.missing && parsed.droppedKeys.has(String(p.path[p.path.length - 1]))) continue;
      issues.push({ file, key: p.path.join('.'), line: locator.line(p.path), message: p.message });
    }
    if (issues.length === 0 && config) return { config, issues };
  }
  return { issues: sortIssues(issues) };
}

interface SyntaxProblem {
  line: number;
  column: number;
  message: string;
}

interface TolerantParse {
  doc?: Record<string, unknown>;
  /** The text that parsed: the input with the offending lines blanked (line numbers unchanged). */
  text: string;
  syntax: SyntaxProblem[];
  /** Last component of the keys on blanked lines. */
  droppedKeys: Set<string>;
}

const MAX_SYNTAX_ERRORS = 20;

/**
 * smol-toml stops at the first syntax error. To report more than one, blank the offending line and
 * parse again, as long as that is safe: not for a broken table header (the keys below it would
 * land in the wrong table) nor for a line that opens a multi-line string, array or inline table
 * (its continuation lines would be misread), and never again for the same or an empty line (a
 * cascade, not a new error). When recovery stops early the document is not validated.
 */
function parseTolerant(text: string): TolerantParse {
  const lines = text.split('\n');
  const syntax: SyntaxProblem[] = [];
  const droppedKeys = new Set<string>();
  for (;;) {
    const current = lines.join('\n');
    try {
      return { doc: parse(current) as Record<string, unknown>, text: current, syntax, droppedKeys };
    } catch (err) {
      if (!(err instanceof TomlError)) throw err;
      const content = lines[err.line - 1];
      const cascade = syntax.length > 0 && (content === undefined || content.trim() === '');
      if (!cascade) syntax.push({ line: err.line, column: err.column, message: tomlReason(err) });
      if (cascade || content === undefined || content.trim() === '' || syntax.length >= MAX_SYNTAX_ERRORS) {
        return { text: current, syntax, droppedKeys };
      }
      if (/^\s*\[/.test(content) || opensMultiline(content)) return { text: current, syntax, droppedKeys };
      const key = /^\s*([^=#]+?)\s*=/.exec(content)?.[1];
      if (key) droppedKeys.add(key.split('.').pop()!.trim().replace(/^["']|["']$/g, ''));
      lines[err.line - 1] = '';
    }
  }
}

function tomlReason(err: TomlError): string {
  return err.message.replace(/^Invalid TOML document: /, '').split('\n\n')[0];
}

function opensMultiline(line: string): boolean {
  const body = line.replace(/#.*$/, '');
  const triples = (body.match(/"""|'''/g) ?? []).length;
  const count = (c: string) => body.split(c).length - 1;
  return triples % 2 === 1 || count('[') > count(']') || count('{') > count('}');
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((a, b) => (a.issue.line ?? Infinity) - (b.issue.line ?? Infinity) || a.i - b.i)
    .map(({ issue }) => issue);
}
