/**
 * failoverctl's argument handling in-process (yargs definitions → handlers): usage errors, the
 * config selectors, and import-env's positionals and --role as the parser hands them over.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { runInProcess } from './in-process.js';
import { ExitCode } from '../../src/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-ctl-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ctl = runInProcess;

describe('failoverctl usage errors (exit 1, nothing run)', () => {
  it('no command', async () => {
    const r = await ctl([]);
    expect(r.code).toBe(ExitCode.REFUSED);
    expect(r.stderr).toMatch(/name a command/);
    expect(r.stderr).toMatch(/Run failoverctl --help for usage/);
  });

  it('an unknown command or option', async () => {
    const cmd = await ctl(['failover']);
    expect(cmd.code).toBe(ExitCode.REFUSED);
    expect(cmd.stderr).toMatch(/Unknown argument: failover/);
    const opt = await ctl(['status', '--forse']);
    expect(opt.code).toBe(ExitCode.REFUSED);
    expect(opt.stderr).toMatch(/Unknown argument: forse/);
  });

  it('--config and --instance together', async () => {
    const r = await ctl(['--config', path.join(tmp, 'dr.toml'), '--instance', 'dr', 'check-config']);
    expect(r.code).toBe(ExitCode.REFUSED);
    expect(r.stderr).toMatch(/config and instance are mutually exclusive/);
  });

  it('--json: the usage error as JSON on stdout too', async () => {
    const r = await ctl(['--json', 'status', '--forse']);
    expect(r.code).toBe(ExitCode.REFUSED);
    expect(JSON.parse(r.stdout)).toEqual({ ok: false, error: { code: 'USAGE', message: expect.stringMatching(/Unknown argument: forse/) } });
  });
});

describe('--instance NAME', () => {
  it('means NAME.toml in the config directory (a missing one: exit 78, the file named)', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'etc-'));
    const r = await ctl(['--instance', 'typo', 'check-config'], { FAILOVER_AGENT_CONFIG_DIR: dir });
    expect(r.code).toBe(ExitCode.CONFIG);
    expect(r.stderr).toContain(`${path.join(dir, 'typo.toml')}: file not found`);
  });

  it('a name that would leave the directory is refused (exit 78)', async () => {
    const r = await ctl(['--instance', '../etc/passwd', 'check-config'], { FAILOVER_AGENT_CONFIG_DIR: tmp });
    expect(r.code).toBe(ExitCode.CONFIG);
    expect(r.stderr).toMatch(/invalid instance name/);
  });
});

describe('import-env through the parser', () => {
  const ENV_DR = 'DNS_SERVER=10.10.1.53\nDNS_ZONE=example.com\nDNS_RECORD=syslog.example.com\nPRIMARY_IP=10.10.10.10\nDR_IP=10.20.20.20\nTSIG_KEYFILE=/etc/failover-agent/tsig.key\n';

  it('<file> [more..] are merged, --role decides when the files do not say', async () => {
    const main = path.join(tmp, 'site.env');
    const more = path.join(tmp, 'site-more.env');
    fs.writeFileSync(main, ENV_DR);
    fs.writeFileSync(more, 'NOTIFY_WEBHOOK=https://hooks.example.com/x\n');
    const r = await ctl(['import-env', main, more, '--role', 'dr']);
    expect(r.code, r.stderr).toBe(ExitCode.OK);
    const toml = parse(r.stdout) as { role: string; notify: { webhook: string }; sites: { dr: string } };
    expect(toml).toMatchObject({ role: 'dr', sites: { dr: '10.20.20.20' }, notify: { webhook: 'https://hooks.example.com/x' } });
    // Without --role the same files cannot tell: a config error naming the flag.
    const none = await ctl(['import-env', main, more]);
    expect(none.code).toBe(ExitCode.CONFIG);
    expect(none.stderr).toMatch(/--role primary or --role dr/);
  });

  it('--role takes primary or dr only', async () => {
    const r = await ctl(['import-env', path.join(tmp, 'site.env'), '--role', 'standby']);
    expect(r.code).toBe(ExitCode.REFUSED);
    expect(r.stderr).toMatch(/Invalid values:[\s\S]*role[\s\S]*"primary", "dr"/);
  });

  it('without a file: a usage error', async () => {
    const r = await ctl(['import-env']);
    expect(r.code).toBe(ExitCode.REFUSED);
    expect(r.stderr).toMatch(/Not enough non-option arguments/);
  });
});
