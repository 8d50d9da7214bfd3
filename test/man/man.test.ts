/**
 * The man pages and the bash completion checked against the code, so they cannot drift:
 * failoverctl(1) and the completion against the yargs definitions (through failoverctl's own
 * --help), failover-agent.toml(5) generated from the example config whose keys must be the
 * schema's, failover-agent(8) against the reload keys and the exit codes.
 * Regenerate failover-agent.toml.5: UPDATE_MAN=1 npx vitest run test/man
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LIVE_KEYS } from '../../src/agent/reload.js';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { checkConfig, isTable, KNOWN_KEYS, type Config } from '../../src/config/schema.js';
import { ExitCode } from '../../src/errors.js';
import { cli } from '../cli/in-process.js';
import { minimalToml } from '../fixtures/minimal-config.js';
import { exampleKeys, tomlPage, type ExampleKey } from './toml-page.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (p: string): string => fs.readFileSync(path.join(ROOT, p), 'utf8');
/** roff text with font escapes removed and \- as -. */
const plain = (roff: string): string => roff.replace(/\\f[BIRP]/g, '').replace(/\\-/g, '-').replace(/\\&/g, '');

/** What the shipped completion offers for the words typed so far (the last one being completed). */
function complete(words: string[], env: Record<string, string> = {}): string[] {
  const script = `source ${JSON.stringify(path.join(ROOT, 'packaging/completion/failoverctl'))}
COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}
_failoverctl; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, ...env } }).split('\n').filter(Boolean).sort();
}

describe('failoverctl(1) against the yargs definitions', () => {
  it('names every command and option the program has, and no other command', async () => {
    const page = plain(read('packaging/man/failoverctl.1'));
    const { global, commands } = await cli();
    expect(commands.size).toBeGreaterThanOrEqual(9);
    for (const [cmd, opts] of commands) {
      const entry = new RegExp(`^\\.B ${cmd}\\b(.*)$`, 'm').exec(page);
      expect(entry, `command ${cmd}`).not.toBeNull();
      for (const o of opts) expect(entry![1], `${cmd} ${o}`).toContain(o);
    }
    for (const o of global) expect(page, o).toMatch(new RegExp(`^\\.BI? ${o}\\b`, 'm'));
    const sections = page.split(/^\.SH /m);
    const commandSection = sections.find((s) => s.startsWith('COMMANDS'))!;
    const listed = [...commandSection.matchAll(/^\.TP\n\.B ([\w-]+)/gm)].map((m) => m[1]!);
    expect(listed.sort()).toEqual([...commands.keys()].sort());
  });

  it('documents the status exit codes the program uses', async () => {
    const { StatusExit } = await import('../../src/cli/status-verdict.js');
    const page = plain(read('packaging/man/failoverctl.1'));
    for (const code of Object.values(StatusExit)) expect(page).toMatch(new RegExp(`\\b${code} when|exits ${code}\\b`));
  });
});

describe('bash completion against the yargs definitions', () => {
  it('offers every command and the global options, nothing else, at the first word', async () => {
    const { global, commands } = await cli();
    expect(complete(['failoverctl', ''])).toEqual([...commands.keys(), ...global].sort());
  });

  it("offers exactly each command's options after it (global options included)", async () => {
    const { global, commands } = await cli();
    for (const [cmd, opts] of commands) {
      expect(complete(['failoverctl', '--json', cmd, '--']), cmd).toEqual([...opts, ...global].sort());
    }
  });

  it('completes instance names from the config directory, and a prefix', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-compl-'));
    try {
      for (const f of ['primary.toml', 'dr.toml', 'notes.txt']) fs.writeFileSync(path.join(dir, f), '');
      expect(complete(['failoverctl', '--instance', ''], { FAILOVER_AGENT_CONFIG_DIR: dir })).toEqual(['dr', 'primary']);
      expect(complete(['failoverctl', 'sw'])).toEqual(['switchover']);
      expect(complete(['failoverctl', 'import-env', 'x.env', '--role', 'p'])).toEqual(['primary']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('failover-agent.toml(5)', () => {
  const example = read('etc/failover-agent/dr.toml.example');

  it('the example configurations have exactly the schema keys', () => {
    const schemaKeys = Object.entries(KNOWN_KEYS).flatMap(([section, keys]) =>
      // A key that is a table of its own (dns.gss) is listed by its keys.
      section === '' ? keys.filter((k) => !(k in KNOWN_KEYS)) : keys.filter((k) => !(`${section}.${k}` in KNOWN_KEYS)).map((k) => `${section}.${k}`),
    );
    for (const file of ['etc/failover-agent/dr.toml.example', 'etc/failover-agent/primary.toml.example']) {
      const keys = exampleKeys(read(file)).keys.map((k) => (k.section ? `${k.section}.${k.key}` : k.key));
      expect(keys.sort(), file).toEqual([...schemaKeys].sort());
    }
  });

  it('is generated from the example (UPDATE_MAN=1 regenerates it)', () => {
    const file = path.join(ROOT, 'packaging/man/failover-agent.toml.5');
    const want = tomlPage(example);
    if (process.env.UPDATE_MAN === '1') fs.writeFileSync(file, want);
    expect(fs.readFileSync(file, 'utf8')).toBe(want);
    // Every key has a description, not only its example line.
    for (const k of exampleKeys(example).keys) expect(k.doc.filter(Boolean).length, k.key).toBeGreaterThan(0);
  });
});

const STRING_OR_ARRAY = String.raw`"(?:[^"\\]|\\.)*"|\[[^\]]*\]`;
const SCALAR = String.raw`-?\d+\b|true\b|false\b`;

/**
 * What a key's comment says of its default: `Default <TOML literal>`, or `Default: <words>` with
 * a literal in them that names other keys as <placeholders>, or words alone (nothing is filled in:
 * found at run time), or `Required.`.
 */
function documentedDefault(k: ExampleKey): { required: true } | { literal: string } | { none: string } {
  const doc = k.doc.join(' ');
  if (/\bRequired\./.test(doc)) return { required: true };
  const direct = new RegExp(`\\bDefault (${STRING_OR_ARRAY}|${SCALAR})`).exec(doc);
  if (direct) return { literal: direct[1]! };
  const described = /\bDefault: ([^.]*(?:\.\S[^.]*)*)\./.exec(doc);
  expect(described, `${k.section}.${k.key} documents neither its default nor "Required."`).not.toBeNull();
  const inWords = new RegExp(`(${STRING_OR_ARRAY})`).exec(described![1]!);
  return inWords ? { literal: inWords[1]! } : { none: described![1]! };
}

/** The configuration the schema makes of `raw`, failing the test with its problems. */
function configOf(raw: Record<string, unknown>, role: string): Config {
  const { config, problems } = checkConfig(raw, `/etc/failover-agent/${role}.toml`);
  expect(problems).toEqual([]);
  return config!;
}

describe('failover-agent.toml(5) defaults are the schema\'s', () => {
  // The page is generated from dr.toml.example; primary.toml.example documents the same keys.
  it.each(['dr', 'primary'] as const)('%s.toml.example: each documented default is what the schema fills in; each "Required." key is required', (role) => {
    const tsigMinimal = parseToml(minimalToml(role)) as Record<string, Record<string, unknown>>;
    // [dns.gss] keys are judged on the minimal GSS-TSIG configuration (the two are exclusive).
    const gssMinimal = structuredClone(tsigMinimal);
    delete gssMinimal.dns!.key_file;
    Object.assign(gssMinimal.dns!, { auth: 'gss-tsig', gss: { principal: 'failover-agent@EXAMPLE.COM', keytab: '/etc/failover-agent/failover.keytab' } });
    const minimal = tsigMinimal;
    const baseline = configOf(structuredClone(minimal), role) as unknown as Record<string, Record<string, unknown>>;
    const other = role === 'dr' ? baseline.sites!.primary : baseline.sites!.dr;
    // Placeholders a default may name: the values of the minimal configuration.
    const placeholders: Record<string, string> = {
      '<record>': String(minimal.dns!.record),
      '<sites.primary>': String(minimal.sites!.primary),
      "<the other site's IP>": String(other),
    };
    const keys = exampleKeys(read(`etc/failover-agent/${role}.toml.example`)).keys;
    let literals = 0;
    for (const k of keys) {
      const name = k.section ? `${k.section}.${k.key}` : k.key;
      const path = k.section ? k.section.split('.') : [];
      const table = (c: Record<string, unknown>, create = false): Record<string, unknown> =>
        path.reduce<Record<string, unknown>>((t, p) => {
          if (create && !isTable(t[p])) t[p] = {};
          return t[p] as Record<string, unknown>;
        }, c);
      const at = (c: Record<string, unknown>): unknown => table(c)?.[k.key];
      const doc = documentedDefault(k);
      const base = k.section === 'dns.gss' ? gssMinimal : minimal;
      const baseConfig = k.section === 'dns.gss' ? (configOf(structuredClone(gssMinimal), role) as unknown as Record<string, Record<string, unknown>>) : baseline;
      const without = structuredClone(base) as Record<string, unknown>;
      delete table(without, true)[k.key];
      if ('required' in doc) {
        const { problems } = checkConfig(without, `/etc/failover-agent/${role}.toml`);
        expect(problems.filter((p) => p.missing).map((p) => p.path.join('.')), name).toContain(name);
        continue;
      }
      if ('none' in doc) {
        // Nothing written in the file stands for it: the schema leaves it unset (found at run time).
        expect(at(baseConfig), `${name}: documented as "${doc.none}"`).toBeUndefined();
        continue;
      }
      const text = doc.literal.replace(/<[^>]+>/g, (p) => {
        expect(placeholders, `${name}: unknown placeholder ${p}`).toHaveProperty([p]);
        return placeholders[p]!;
      });
      const value = (parseToml(`v = ${text}`) as { v: unknown }).v;
      const explicit = structuredClone(base) as Record<string, unknown>;
      table(explicit, true)[k.key] = value; // (every top-level key is required)
      expect(at(configOf(explicit, role) as unknown as Record<string, unknown>), `${name}: documented default ${doc.literal}`).toEqual(at(baseConfig));
      literals++;
    }
    expect(literals).toBeGreaterThanOrEqual(30);
  });
});

describe('docs/WITNESS.md', () => {
  it("the renewals a day it counts are the schema's default lease.renew_interval", () => {
    const renew = configOf(parseToml(minimalToml('primary')) as Record<string, unknown>, 'primary').lease.renew_interval;
    const m = /default `lease\.renew_interval` of (\d+) s that is \*\*([\d,]+) serials a day\*\*/.exec(read('docs/WITNESS.md'));
    expect(m, 'the sentence with the default and the count').not.toBeNull();
    expect(Number(m![1]) * 1000).toBe(renew);
    expect(m![2]).toBe((86_400_000 / renew).toLocaleString('en-US'));
  });
});

describe('failover-agent(8)', () => {
  const page = plain(read('packaging/man/failover-agent.8'));

  it('lists exactly the keys a reload applies', () => {
    const reload = page.split(/^\.SH /m).find((s) => s.startsWith('RELOAD'))!;
    const keys = [...reload.matchAll(/^\.BR ([a-z_]+\.[a-z_]+) ,?/gm)].map((m) => m[1]!);
    expect(keys.sort()).toEqual([...LIVE_KEYS].sort());
  });

  it('documents every exit code', () => {
    const exit = page.split(/^\.SH /m).find((s) => s.startsWith('EXIT STATUS'))!;
    const codes = [...exit.matchAll(/^\.B (\d+)$/gm)].map((m) => Number(m[1]));
    expect(codes.sort((a, b) => a - b)).toEqual(Object.values(ExitCode).sort((a, b) => a - b));
  });

  it('names the options the agent takes', () => {
    const main = read('src/agent/main.ts');
    const options = [...main.matchAll(/argValue\(argv, '(--[\w-]+)'\)/g)].map((m) => m[1]!);
    expect(options.sort()).toEqual(['--config', '--instance']);
    for (const o of options) expect(page).toMatch(new RegExp(`^\\.BI ${o} `, 'm'));
  });
});
