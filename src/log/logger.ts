/**
 * Structured one-line logging on winston with syslog levels (SPEC §7).
 *
 * Under systemd (JOURNAL_STREAM set) each line starts with the kernel-style priority prefix `<N>`
 * that journald's stdout stream parser turns into PRIORITY=N, and carries no timestamp (journald
 * stamps it). Elsewhere a line is `ISO-time level msg key=value ...`. Nothing here is a module
 * singleton: the agent creates one logger and passes it (or children of it) down.
 */
import winston from 'winston';

import { AgentError, ExitCode } from '../errors.js';

export const SYSLOG_LEVELS = ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug'] as const;
export type LogLevel = (typeof SYSLOG_LEVELS)[number];
export type LogFields = Record<string, unknown>;

export interface Logger {
  emerg(msg: string, fields?: LogFields): void;
  alert(msg: string, fields?: LogFields): void;
  crit(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  warning(msg: string, fields?: LogFields): void;
  notice(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (the event's own fields win on a clash). */
  child(fields: LogFields): Logger;
  /** Changes the level of this logger and every child (config reload). */
  setLevel(level: LogLevel): void;
}

export interface LoggerOptions {
  level: string;
  /** Journal format (`<N>` prefix, no timestamp). Default: `!!process.env.JOURNAL_STREAM`. */
  journal?: boolean;
  /** Default: process.stdout. */
  stream?: NodeJS.WritableStream;
}

/** syslog priority of each level: emerg 0 … debug 7 (the index in SYSLOG_LEVELS). */
export const PRIORITY: Readonly<Record<LogLevel, number>> = Object.fromEntries(
  SYSLOG_LEVELS.map((l, i) => [l, i]),
) as Record<LogLevel, number>;

export function isLogLevel(s: string): s is LogLevel {
  return (SYSLOG_LEVELS as readonly string[]).includes(s);
}

// Fields travel under a symbol so a field called `level` or `message` cannot clobber winston's own.
const FIELDS = Symbol('fields');

interface Info extends winston.Logform.TransformableInfo {
  [FIELDS]?: LogFields;
}

export function createLogger(opts: LoggerOptions): Logger {
  if (!isLogLevel(opts.level)) {
    throw new AgentError(
      'LOG_LEVEL_INVALID',
      `unknown log level "${opts.level}" (use one of: ${SYSLOG_LEVELS.join(' ')})`,
      ExitCode.CONFIG,
    );
  }
  const journal = opts.journal ?? !!process.env.JOURNAL_STREAM;
  const stream = opts.stream ?? process.stdout;

  const line = winston.format.printf((info: Info) => {
    const level = info.level as LogLevel;
    const text = formatEvent(String(info.message), info[FIELDS] ?? {});
    return journal ? `<${PRIORITY[level]}>${text}` : `${new Date().toISOString()} ${level} ${text}`;
  });

  const w = winston.createLogger({
    levels: winston.config.syslog.levels,
    level: opts.level,
    format: line,
    exitOnError: false,
    transports: [new winston.transports.Stream({ stream, eol: '\n' })],
  });

  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel) => (msg: string, fields?: LogFields) => {
      w.log({ level, message: msg, [FIELDS]: fields ? { ...base, ...fields } : base });
    };
    return {
      emerg: emit('emerg'),
      alert: emit('alert'),
      crit: emit('crit'),
      error: emit('error'),
      warning: emit('warning'),
      notice: emit('notice'),
      info: emit('info'),
      debug: emit('debug'),
      child: (fields) => make({ ...base, ...fields }),
      setLevel: (level) => {
        w.level = level;
      },
    };
  };
  return make({});
}

/** A logger that drops everything (for tests and tools that must stay quiet). */
export function nullLogger(): Logger {
  const drop = (): void => {};
  const l: Logger = {
    emerg: drop, alert: drop, crit: drop, error: drop, warning: drop, notice: drop, info: drop, debug: drop,
    child: () => l,
    setLevel: drop,
  };
  return l;
}

/** `msg key=value key=value` with everything that could break the line escaped. */
export function formatEvent(msg: string, fields: LogFields): string {
  let out = escapeControl(msg);
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue; // lets callers pass optional fields without filtering them
    const k = safeKey(key);
    if (value instanceof Error) {
      out += ` ${k}=${formatString(value.message)}`;
      const code = (value as { code?: unknown }).code;
      if (typeof code === 'string' || typeof code === 'number') out += ` ${k}_code=${formatString(String(code))}`;
      continue;
    }
    out += ` ${k}=${formatValue(value)}`;
  }
  return out;
}

export function formatValue(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return value.toString();
    case 'string':
      return formatString(value);
    case 'symbol':
      return formatString(value.toString());
    case 'function':
      return formatString(`[function ${value.name || 'anonymous'}]`);
    case 'undefined':
      return 'undefined';
    default:
      break;
  }
  if (value === null) return 'null';
  if (value instanceof Error) return formatString(value.message);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'invalid-date' : value.toISOString();
  return compactJson(value);
}

// Quote only when a plain token would be ambiguous or would break the line.
function formatString(s: string): string {
  return s === '' || /[\s="\\\p{Cc}]/u.test(s) ? JSON.stringify(s) : s;
}

/** Free text (the message): kept readable, but no control character may split or corrupt the line. */
function escapeControl(s: string): string {
  return s.replace(/\p{Cc}/gu, (c) => JSON.stringify(c).slice(1, -1));
}

function safeKey(key: string): string {
  const k = key.replace(/[^\w.\-/:]/g, '_');
  return k === '' ? '_' : k;
}

/** JSON.stringify that copes with bigint, Error, Map/Set and cycles (JSON never emits raw newlines). */
function compactJson(value: unknown): string {
  // Ancestors of the value being serialised: a cycle is a reference back to one of them
  // (a shared but acyclic object is printed each time it appears).
  const stack: unknown[] = [];
  try {
    const s = JSON.stringify(value, function (this: unknown, _k: string, v: unknown) {
      while (stack.length > 0 && stack[stack.length - 1] !== this) stack.pop();
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Error) {
        const code = (v as { code?: unknown }).code;
        return code === undefined ? { message: v.message } : { message: v.message, code };
      }
      if (v instanceof Map) return Object.fromEntries(v);
      if (v instanceof Set) return [...v];
      if (typeof v === 'object' && v !== null) {
        if (stack.includes(v)) return '[circular]';
        stack.push(v);
      }
      return v;
    });
    return s ?? 'undefined';
  } catch {
    return formatString(String(value));
  }
}
