/**
 * The TSIG key file, in BIND's syntax as `tsig-keygen -a hmac-sha256 NAME` writes it:
 *
 *     key "NAME" {
 *         algorithm hmac-sha256;
 *         secret "base64";
 *     };
 *
 * It is the only place secrets live (SPEC §8), so it is refused when others could read it or
 * anyone but its owner could change it.
 */
import fs from 'node:fs';

import { AgentError, ExitCode } from '../errors.js';

export type TsigAlgorithm = 'hmac-sha256' | 'hmac-sha512';

export interface TsigKey {
  /** Key name as it goes on the wire: lowercase, no trailing dot. */
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

export type KeyFileErrorCode = 'KEYFILE_PERMS' | 'KEYFILE_UNREADABLE' | 'KEYFILE_INVALID';

/** KEYFILE_PERMS / KEYFILE_UNREADABLE: exit 77 (permission); KEYFILE_INVALID: exit 78 (configuration). */
export class KeyFileError extends AgentError {
  readonly file: string;
  readonly line: number | undefined;
  constructor(code: KeyFileErrorCode, file: string, message: string, line?: number, options?: { cause?: unknown }) {
    super(code, message, code === 'KEYFILE_INVALID' ? ExitCode.CONFIG : ExitCode.NOPERM, options);
    this.file = file;
    this.line = line;
  }
}

const ALGORITHMS: readonly TsigAlgorithm[] = ['hmac-sha256', 'hmac-sha512'];

/** Mode bits that make a key file unsafe: world-readable, group-writable, world-writable. */
const UNSAFE_BITS = 0o026;

/** Read a key file after checking its permissions. */
export function loadKeyFile(file: string): TsigKey {
  checkSecretFile(file, TSIG_KEY_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw unreadable(file, err, TSIG_KEY_FILE);
  }
  return parseKeyFile(text, file);
}

/** What a secret file is called in messages, and how to make one. */
interface SecretKind {
  label: string;
  /** What it holds, after "it holds". */
  holds: string;
  create: string;
}

const TSIG_KEY_FILE: SecretKind = {
  label: 'TSIG key file',
  holds: 'the secret that can move the failover record',
  create: 'create it with "tsig-keygen -a hmac-sha256 NAME > FILE", the same key the DNS server has',
};

const KEYTAB: SecretKind = {
  label: 'Kerberos keytab',
  holds: 'the keys of the principal that can move the failover record',
  create: 'export the principal\'s keys into it: "ktadd -k FILE PRINCIPAL" in kadmin, or "ktpass" / "samba-tool domain exportkeytab" for Active Directory',
};

/**
 * The GSS-TSIG keytab (dns.gss.keytab): the same ownership and mode rules as the key file, and it
 * must be a keytab (MIT's format: 0x05 then version 1 or 2); the library reads it, not us.
 */
export function checkKeytab(file: string): void {
  checkSecretFile(file, KEYTAB);
  let head: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      head = Buffer.alloc(2);
      const n = fs.readSync(fd, head, 0, 2, 0);
      head = head.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw unreadable(file, err, KEYTAB);
  }
  if (head.length < 2 || head[0] !== 0x05 || (head[1] !== 0x01 && head[1] !== 0x02)) {
    throw new KeyFileError('KEYFILE_INVALID', file, `Kerberos keytab ${file} is not a keytab (it does not start with the keytab format's 0x05 0x01/0x02): ${KEYTAB.create}`);
  }
}

/** Exists, is a regular file, and neither others may read it nor anyone but its owner change it. */
function checkSecretFile(file: string, kind: SecretKind): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw unreadable(file, err, kind);
  }
  if (!st.isFile()) {
    throw new KeyFileError('KEYFILE_UNREADABLE', file, `${kind.label} ${file} is not a regular file`);
  }
  const mode = st.mode & 0o7777;
  if (mode & UNSAFE_BITS) {
    const what = [
      mode & 0o004 ? 'world-readable' : '',
      mode & 0o020 ? 'group-writable' : '',
      mode & 0o002 ? 'world-writable' : '',
    ].filter(Boolean);
    throw new KeyFileError(
      'KEYFILE_PERMS',
      file,
      `${kind.label} ${file} has mode ${octal(mode)} (${what.join(', ')}); it holds ${kind.holds}, so it must not be: ` +
        `run "chown root:failover-agent ${file} && chmod 0640 ${file}"`,
    );
  }
}

function unreadable(file: string, err: unknown, kind: SecretKind): KeyFileError {
  const e = err as NodeJS.ErrnoException;
  const why =
    e.code === 'ENOENT'
      ? `does not exist (${kind.create})`
      : e.code === 'EACCES'
        ? 'is not readable by this user (it should be owner root, group failover-agent, mode 0640)'
        : `cannot be read: ${e.message}`;
  return new KeyFileError('KEYFILE_UNREADABLE', file, `${kind.label} ${file} ${why}`, undefined, { cause: err });
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// Parser for the `key` statement of named.conf syntax.

interface Token {
  /** 'word' (bare), 'string' (quoted, unescaped), or the punctuation itself. */
  kind: 'word' | 'string' | '{' | '}' | ';';
  text: string;
  line: number;
}

/** Parse key-file text; `file` is only used in messages. Throws KeyFileError (KEYFILE_INVALID, exit 78). */
export function parseKeyFile(text: string, file: string): TsigKey {
  const fail: (message: string, line?: number) => never = (message, line) => {
    throw new KeyFileError('KEYFILE_INVALID', file, `${file}${line !== undefined ? `:${line}` : ''}: ${message}`, line);
  };
  const tokens = tokenize(text, fail);
  let pos = 0;
  const next = (): Token | undefined => tokens[pos++];
  const lastLine = (): number => tokens[tokens.length - 1]?.line ?? 1;
  const expect = (kind: Token['kind'], what: string): Token => {
    const t = next();
    if (!t) return fail(`expected ${what}, found the end of the file`, lastLine());
    if (t.kind !== kind) return fail(`expected ${what}, found "${t.text}"`, t.line);
    return t;
  };

  let key: TsigKey | undefined;
  while (pos < tokens.length) {
    const kw = next()!;
    if (kw.kind === ';') continue; // stray semicolons are harmless
    if (kw.kind !== 'word' || kw.text.toLowerCase() !== 'key') {
      fail(`expected a "key" statement, found "${kw.text}"`, kw.line);
    }
    if (key) fail('more than one key in the file; the agent uses exactly one (put each key in its own file)', kw.line);

    const nameTok = next();
    if (!nameTok || (nameTok.kind !== 'word' && nameTok.kind !== 'string')) {
      return fail('expected the key name after "key"', nameTok?.line ?? kw.line);
    }
    const name = nameTok.text.trim().toLowerCase().replace(/\.$/, '');
    if (name === '') fail('the key name is empty', nameTok.line);
    expect('{', '"{" after the key name');

    let algorithm: TsigAlgorithm | undefined;
    let secret: Buffer | undefined;
    for (;;) {
      const t = next();
      if (!t) return fail(`key "${name}": missing "};"`, lastLine());
      if (t.kind === '}') break;
      if (t.kind !== 'word') return fail(`key "${name}": unexpected "${t.text}"`, t.line);
      const clause = t.text.toLowerCase();
      const value = next();
      if (!value || (value.kind !== 'word' && value.kind !== 'string')) {
        return fail(`key "${name}": "${t.text}" needs a value`, value?.line ?? t.line);
      }
      expect(';', `";" after ${t.text} ${value.text}`);
      if (clause === 'algorithm') {
        if (algorithm) fail(`key "${name}": algorithm given twice`, t.line);
        const alg = value.text.toLowerCase();
        if (!(ALGORITHMS as readonly string[]).includes(alg)) {
          fail(`key "${name}": algorithm "${value.text}" is not supported (use hmac-sha256 or hmac-sha512: tsig-keygen -a hmac-sha256)`, value.line);
        }
        algorithm = alg as TsigAlgorithm;
      } else if (clause === 'secret') {
        if (secret) fail(`key "${name}": secret given twice`, t.line);
        secret = decodeSecret(value.text, (m) => fail(`key "${name}": ${m}`, value.line));
      } else {
        fail(`key "${name}": unknown clause "${t.text}" (a key has only algorithm and secret)`, t.line);
      }
    }
    expect(';', '";" after "}"');
    if (!algorithm) fail(`key "${name}": no algorithm`, kw.line);
    if (!secret) fail(`key "${name}": no secret`, kw.line);
    key = { name, algorithm, secret };
  }
  if (!key) return fail('no "key" statement found (expected the output of tsig-keygen)', 1);
  return key;
}

function decodeSecret(text: string, fail: (m: string) => never): Buffer {
  const b64 = text.replace(/\s+/g, '');
  if (b64 === '') return fail('the secret is empty');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return fail('the secret is not valid base64');
  return Buffer.from(b64, 'base64');
}

/** named.conf lexical rules: "#", "//" and C-style block comments; "strings"; braces and ";"; bare words. */
function tokenize(text: string, fail: (message: string, line?: number) => never): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === '#' || text.startsWith('//', i)) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) fail('unterminated /* comment', line);
      for (; i < end + 2; i++) if (text[i] === '\n') line++;
    } else if (c === '"') {
      const start = line;
      let s = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        if (text[i] === '\n') line++;
        s += text[i++];
      }
      if (i >= text.length) fail('unterminated string', start);
      i++;
      out.push({ kind: 'string', text: s, line: start });
    } else if (c === '{' || c === '}' || c === ';') {
      out.push({ kind: c, text: c, line });
      i++;
    } else {
      const start = i;
      while (i < text.length && !/[\s{};"#]/.test(text[i]) && !text.startsWith('//', i) && !text.startsWith('/*', i)) i++;
      out.push({ kind: 'word', text: text.slice(start, i), line });
    }
  }
  return out;
}
