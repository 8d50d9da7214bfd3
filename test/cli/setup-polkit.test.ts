/**
 * The polkit side of a collector unit other than the packaged one: failoverctl setup writes (or
 * prints) the override rule, check-config reads the installed rules and warns when none allows
 * the configured unit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkConfigCommand, polkitAllowedUnits, polkitWarnings } from '../../src/cli/check-config.js';
import { Output } from '../../src/cli/output.js';
import { polkitRule } from '../../src/cli/setup.js';
import { runInProcess } from './in-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGED = fs.readFileSync(path.join(ROOT, 'systemd/50-failover-agent.rules'), 'utf8');
const FLAGS = ['--record', 'syslog.example.com', '--zone', 'example.com', '--primary-ip', '10.10.10.10', '--dr-ip', '10.20.20.20', '--dns-server', '127.0.0.1:1'];

let tmp: string;
/** Stand-ins for /etc/polkit-1/rules.d and /usr/share/polkit-1/rules.d. */
let etc: string;
let usr: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-polkit-'));
  [etc, usr] = [path.join(tmp, 'etc'), path.join(tmp, 'usr')];
  for (const d of [etc, usr]) fs.mkdirSync(d);
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const systemd = (unit: string) => ({ collector: { control: 'systemd' as const, unit } });

describe('the polkit rule parser (check-config)', () => {
  it('reads the packaged rule and the override setup writes', () => {
    fs.writeFileSync(path.join(usr, '50-failover-agent.rules'), PACKAGED);
    expect(polkitAllowedUnits([etc, usr])).toEqual({ units: new Set(['otelcol-contrib.service']), ours: true, unreadable: [] });
    fs.writeFileSync(path.join(etc, '49-failover-agent-local.rules'), polkitRule('collector@a\\x2db.service'));
    expect(polkitAllowedUnits([etc, usr]).units).toEqual(new Set(['otelcol-contrib.service', 'collector@a\\x2db.service']));
  });

  it('the packaged rule is the override for otelcol-contrib.service (comments apart): one form for the parser', () => {
    const code = (t: string) => t.replace(/^\/\/.*\n/gm, '');
    expect(code(polkitRule('otelcol-contrib.service'))).toBe(code(PACKAGED));
  });

  it('a file in /etc masks the one of the same name in /usr/share; rules for other users and other actions allow nothing', () => {
    fs.writeFileSync(path.join(usr, '50-failover-agent.rules'), PACKAGED);
    fs.writeFileSync(path.join(etc, '50-failover-agent.rules'), '');
    fs.writeFileSync(path.join(usr, '60-other.rules'), PACKAGED.replace('"failover-agent"', '"someone"').replace('otelcol-contrib', 'x'));
    fs.writeFileSync(path.join(usr, '61-other.rules'), PACKAGED.replace('systemd1.manage-units', 'login1.reboot').replace('otelcol-contrib', 'y'));
    expect(polkitAllowedUnits([etc, usr])).toEqual({ units: new Set(), ours: true, unreadable: [] });
  });

  it('a rule for our user without a unit comparison allows every unit; a commented-out comparison is not read', () => {
    fs.writeFileSync(path.join(usr, '50-failover-agent.rules'), PACKAGED.replace(/ &&\n\s*action\.lookup\("unit"\) == "otelcol-contrib\.service"/, '').replace('var verb', '// && action.lookup("unit") == "c.service"\n    var verb'));
    expect(polkitAllowedUnits([etc, usr]).units).toEqual(new Set(['*']));
  });
});

describe('check-config: the polkit warning', () => {
  it('warns for a unit the installed rules do not allow, not for one they do', () => {
    fs.writeFileSync(path.join(usr, '50-failover-agent.rules'), PACKAGED);
    expect(polkitWarnings(systemd('otelcol-contrib.service'), [etc, usr])).toEqual([]);
    const [w, ...more] = polkitWarnings(systemd('my-collector.service'), [etc, usr]);
    expect(more).toEqual([]);
    expect(w).toMatchObject({ key: 'collector.unit', message: expect.stringMatching(/manage only otelcol-contrib\.service, not my-collector\.service: .*Interactive authentication required.*49-failover-agent-local\.rules/) });
    fs.writeFileSync(path.join(etc, '49-failover-agent-local.rules'), polkitRule('my-collector.service'));
    expect(polkitWarnings(systemd('my-collector.service'), [etc, usr])).toEqual([]);
  });

  it('the packaged rule masked: the default unit is not allowed either', () => {
    fs.writeFileSync(path.join(usr, '50-failover-agent.rules'), PACKAGED);
    fs.writeFileSync(path.join(etc, '50-failover-agent.rules'), '');
    expect(polkitWarnings(systemd('otelcol-contrib.service'), [etc, usr])[0]?.message).toMatch(/manage no unit, not otelcol-contrib\.service/);
  });

  it('no warning without a collector to control, nor where no rule of ours is installed (a source checkout)', () => {
    fs.writeFileSync(path.join(usr, '50-failover-agent.rules'), PACKAGED);
    expect(polkitWarnings({ collector: { control: 'none', unit: 'my-collector.service' } }, [etc, usr])).toEqual([]);
    expect(polkitWarnings(systemd('my-collector.service'), [etc, path.join(tmp, 'missing')])).toEqual([]);
  });

  it('failoverctl check-config prints it (exit 0) for the files setup wrote', async () => {
    const out = path.join(tmp, 'conf');
    expect((await runInProcess(['setup', '--out', out, '--polkit-dir', path.join(tmp, 'nowhere'), '--collector', 'my-collector.service', ...FLAGS])).code).toBe(0);
    fs.writeFileSync(path.join(usr, '50-failover-agent.rules'), PACKAGED);
    const stdout = new PassThrough();
    let text = '';
    stdout.on('data', (c) => (text += String(c)));
    const code = await checkConfigCommand({ config: path.join(out, 'dr.toml') }, new Output({ stdout, stderr: new PassThrough() }, () => false), {}, [etc, usr]);
    expect(code).toBe(0);
    expect(text).toMatch(/^warning: collector\.unit: the installed polkit rules let the user failover-agent manage only otelcol-contrib\.service, not my-collector\.service/m);
  });
});

describe('failoverctl setup: the polkit override', () => {
  const setup = (args: string[]) => runInProcess(['setup', '--out', path.join(tmp, 'conf'), '--polkit-dir', etc, ...FLAGS, ...args]);
  const override = () => path.join(etc, '49-failover-agent-local.rules');

  it('a unit other than the packaged one: writes the rule for exactly that unit; never overwrites it without --force', async () => {
    const r = await setup(['--collector', 'my-collector.service']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`wrote ${override()} (polkit: the agent may start and stop my-collector.service); copy it to the same place on the DR site`);
    expect(fs.statSync(override()).mode & 0o777).toBe(0o644);
    expect(fs.readFileSync(override(), 'utf8')).toBe(polkitRule('my-collector.service'));
    expect(polkitAllowedUnits([etc]).units).toEqual(new Set(['my-collector.service']));
    fs.rmSync(path.join(tmp, 'conf'), { recursive: true });
    const again = await setup(['--collector', 'other.service']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`${override()} already exists; nothing written (--force overwrites)`);
    expect((await setup(['--collector', 'other.service', '--force'])).code).toBe(0);
    expect(polkitAllowedUnits([etc]).units).toEqual(new Set(['other.service']));
  });

  it('the packaged unit, or none: no rule written', async () => {
    expect((await setup([])).code).toBe(0);
    expect((await setup(['--collector', 'none', '--force'])).code).toBe(0);
    expect(fs.readdirSync(etc)).toEqual([]);
  });

  it('no such directory (polkit not installed, or not root): the rule is printed instead', async () => {
    const r = await runInProcess(['setup', '--out', path.join(tmp, 'conf'), '--polkit-dir', path.join(tmp, 'nowhere'), ...FLAGS, '--collector', 'my-collector.service', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { polkit: { file: string; rule: string; written: boolean } };
    expect(out.polkit).toEqual({ file: path.join(tmp, 'nowhere', '49-failover-agent-local.rules'), rule: polkitRule('my-collector.service'), written: false });
    expect(fs.existsSync(path.join(tmp, 'nowhere'))).toBe(false);
    const human = await runInProcess(['setup', '--out', path.join(tmp, 'conf'), '--polkit-dir', path.join(tmp, 'nowhere'), ...FLAGS, '--collector', 'my-collector.service', '--force']);
    expect(human.stdout).toContain(`# ---- polkit: my-collector.service is not the packaged rule's unit; as root, on both sites, write ${path.join(tmp, 'nowhere', '49-failover-agent-local.rules')}: ----`);
    expect(human.stdout).toContain('action.lookup("unit") == "my-collector.service")');
  });
});
