import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { checkKeytab, KeyFileError, loadKeyFile, parseKeyFile } from '../../src/config/keyfile.js';
import { ExitCode } from '../../src/errors.js';

const TSIG_KEYGEN = '/usr/sbin/tsig-keygen';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-keyfile-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Run the real tsig-keygen and write its output to a file with `mode`. */
function keygen(algorithm: string, name: string, mode = 0o640): { file: string; text: string; secret: string } {
  const text = execFileSync(TSIG_KEYGEN, ['-a', algorithm, name], { encoding: 'utf8' });
  const file = path.join(dir, `${algorithm}-${name}.key`);
  fs.writeFileSync(file, text);
  fs.chmodSync(file, mode);
  const secret = /secret "([^"]+)"/.exec(text)![1];
  return { file, text, secret };
}

function caught(fn: () => unknown): KeyFileError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KeyFileError);
    return e as KeyFileError;
  }
  throw new Error('expected a KeyFileError');
}

describe('real tsig-keygen output', () => {
  test.each([
    ['hmac-sha256', 32],
    ['hmac-sha512', 64],
  ] as const)('%s', (algorithm, bytes) => {
    const { file, secret } = keygen(algorithm, 'failover-agent.example.com.');
    const key = loadKeyFile(file);
    expect(key).toEqual({
      name: 'failover-agent.example.com',
      algorithm,
      secret: Buffer.from(secret, 'base64'),
    });
    expect(key.secret).toHaveLength(bytes);
  });

  test('the name is lowercased', () => {
    const { file } = keygen('hmac-sha256', 'Failover-Key');
    expect(loadKeyFile(file).name).toBe('failover-key');
  });

  test.each(['hmac-md5', 'hmac-sha1', 'hmac-sha224', 'hmac-sha384'])('%s is refused with its line, exit 78', (algorithm) => {
    const { file } = keygen(algorithm, 'old');
    const err = caught(() => loadKeyFile(file));
    expect(err.code).toBe('KEYFILE_INVALID');
    expect(err.exitCode).toBe(ExitCode.CONFIG);
    expect(err.line).toBe(2);
    expect(err.message).toBe(
      `${file}:2: key "old": algorithm "${algorithm}" is not supported (use hmac-sha256 or hmac-sha512: tsig-keygen -a hmac-sha256)`,
    );
  });
});

describe('parseKeyFile syntax', () => {
  const SECRET = Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');

  test('comments, whitespace, newlines and an unquoted name', () => {
    const text = `# generated for failover-agent
// another comment
/* a block
   comment */
key   failover.example.com   {algorithm HMAC-SHA256;secret
  "${SECRET}" ; } ;
`;
    expect(parseKeyFile(text, 'k.key')).toEqual({
      name: 'failover.example.com',
      algorithm: 'hmac-sha256',
      secret: Buffer.from('0123456789abcdef0123456789abcdef'),
    });
  });

  test('all on one line', () => {
    const key = parseKeyFile(`key "k" { algorithm hmac-sha512; secret "${SECRET}"; };`, 'k.key');
    expect(key.algorithm).toBe('hmac-sha512');
  });

  test.each([
    ['', 1, 'no "key" statement found (expected the output of tsig-keygen)'],
    ['# only a comment\n', 1, 'no "key" statement found (expected the output of tsig-keygen)'],
    [`key "a" {\n algorithm hmac-sha256;\n secret "${SECRET}";\n};\nkey "b" {\n algorithm hmac-sha256;\n secret "${SECRET}";\n};\n`, 5,
      'more than one key in the file; the agent uses exactly one (put each key in its own file)'],
    [`key "a" {\n algorithm hmac-sha256;\n};\n`, 1, 'key "a": no secret'],
    [`key "a" {\n secret "${SECRET}";\n};\n`, 1, 'key "a": no algorithm'],
    [`key "a" {\n algorithm hmac-sha256;\n secret "not base64!";\n};\n`, 3, 'key "a": the secret is not valid base64'],
    [`key "a" {\n algorithm hmac-sha256;\n secret "";\n};\n`, 3, 'key "a": the secret is empty'],
    [`key "a" {\n algorithm hmac-sha256;\n secret "${SECRET}"\n};\n`, 4, 'expected ";" after secret ' + SECRET + ', found "}"'],
    [`key "a" {\n algorithm hmac-sha256;\n secret "${SECRET}";\n}\n`, 4, 'expected ";" after "}", found the end of the file'],
    [`key "a" {\n algorithm hmac-sha256;\n secret "${SECRET}";\n`, 3, 'key "a": missing "};"'],
    [`key "a" {\n algorithm hmac-sha256;\n secret "${SECRET}";\n owner root;\n};\n`, 4,
      'key "a": unknown clause "owner" (a key has only algorithm and secret)'],
    [`options {\n};\n`, 1, 'expected a "key" statement, found "options"'],
    [`key "a" {\n algorithm hmac-sha256;\n secret "${SECRET}\n`, 3, 'unterminated string'],
    [`/* never closed\nkey "a" {};\n`, 1, 'unterminated /* comment'],
    [`key "" {\n algorithm hmac-sha256;\n secret "${SECRET}";\n};\n`, 1, 'the key name is empty'],
  ])('%j → line %i: %s', (text, line, message) => {
    const err = caught(() => parseKeyFile(text, '/etc/failover-agent/tsig.key'));
    expect(err.code).toBe('KEYFILE_INVALID');
    expect(err.exitCode).toBe(78);
    expect(err.line).toBe(line);
    expect(err.message).toBe(`/etc/failover-agent/tsig.key:${line}: ${message}`);
  });
});

describe('loadKeyFile permissions', () => {
  test.each([0o640, 0o600, 0o440, 0o400, 0o700, 0o750])('mode %s is accepted', (mode) => {
    const { file } = keygen('hmac-sha256', `ok-${mode.toString(8)}`, mode);
    expect(loadKeyFile(file).algorithm).toBe('hmac-sha256');
  });

  test.each([
    [0o644, 'world-readable'],
    [0o604, 'world-readable'],
    [0o660, 'group-writable'],
    [0o642, 'world-writable'],
    [0o666, 'world-readable, group-writable, world-writable'],
  ])('mode %s is refused (%s), exit 77', (mode, what) => {
    const { file } = keygen('hmac-sha256', `bad-${mode.toString(8)}`, mode);
    const err = caught(() => loadKeyFile(file));
    expect(err.code).toBe('KEYFILE_PERMS');
    expect(err.exitCode).toBe(ExitCode.NOPERM);
    expect(err.message).toBe(
      `TSIG key file ${file} has mode 0${mode.toString(8)} (${what}); it holds the secret that can move the failover record, ` +
        `so it must not be: run "chown root:failover-agent ${file} && chmod 0640 ${file}"`,
    );
  });

  test('a missing file: KEYFILE_UNREADABLE, exit 77', () => {
    const file = path.join(dir, 'missing.key');
    const err = caught(() => loadKeyFile(file));
    expect(err.code).toBe('KEYFILE_UNREADABLE');
    expect(err.exitCode).toBe(77);
    expect(err.message).toMatch(new RegExp(`^TSIG key file ${file} does not exist`));
  });

  test('a directory: KEYFILE_UNREADABLE', () => {
    const err = caught(() => loadKeyFile(dir));
    expect(err.code).toBe('KEYFILE_UNREADABLE');
    expect(err.message).toBe(`TSIG key file ${dir} is not a regular file`);
  });

  // root reads any file, so this case only exists for other users.
  test.skipIf(process.getuid?.() === 0)('a file this user cannot read: KEYFILE_UNREADABLE', () => {
    const { file } = keygen('hmac-sha256', 'noread', 0o000);
    expect(caught(() => loadKeyFile(file)).code).toBe('KEYFILE_UNREADABLE');
  });
});

describe('checkKeytab (dns.gss.keytab): the key file\'s rules, and a keytab', () => {
  const KEYTAB = Buffer.from([0x05, 0x02, 0, 0, 0, 0x40]);
  const keytab = (name: string, mode: number, bytes: Buffer = KEYTAB): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes);
    fs.chmodSync(file, mode);
    return file;
  };

  test('0600 and 0640 keytabs pass', () => {
    expect(() => checkKeytab(keytab('ok.keytab', 0o600))).not.toThrow();
    expect(() => checkKeytab(keytab('group.keytab', 0o640))).not.toThrow();
  });

  test('world-readable or group-writable: KEYFILE_PERMS, exit 77, saying how to fix it', () => {
    const file = keytab('open.keytab', 0o644);
    const err = (() => {
      try {
        checkKeytab(file);
      } catch (e) {
        return e as KeyFileError;
      }
    })()!;
    expect(err).toMatchObject({ code: 'KEYFILE_PERMS', exitCode: ExitCode.NOPERM });
    expect(err.message).toBe(
      `Kerberos keytab ${file} has mode 0644 (world-readable); it holds the keys of the principal that can move the failover record, so it must not be: ` +
        `run "chown root:failover-agent ${file} && chmod 0640 ${file}"`,
    );
    expect(() => checkKeytab(keytab('gw.keytab', 0o660))).toThrow(/group-writable/);
  });

  test('missing: KEYFILE_UNREADABLE saying how to export one; not a keytab: KEYFILE_INVALID (78)', () => {
    expect(() => checkKeytab(path.join(dir, 'none.keytab'))).toThrow(/Kerberos keytab .* does not exist \(export the principal's keys into it/);
    const text = keytab('text.keytab', 0o600, Buffer.from('key "x" {};'));
    expect(() => checkKeytab(text)).toThrow(expect.objectContaining({ code: 'KEYFILE_INVALID', exitCode: ExitCode.CONFIG }));
  });
});
