/**
 * dns.auth → the signer (src/dns/signing.ts): the key file for "tsig", the keytab's checks and the
 * gss addon for "gss-tsig"; an addon that cannot load is GSS_ADDON_UNAVAILABLE (exit 78), never a
 * fallback to unsigned.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { loadGssAddon, type GssApi } from '../../src/dns/gss/addon.js';
import { describeSigning, loadSigning } from '../../src/dns/signing.js';
import { ExitCode } from '../../src/errors.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-signing-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const keyFile = path.join(dir, 'tsig.key');
fs.writeFileSync(keyFile, 'key "failover" { algorithm hmac-sha256; secret "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="; };\n', { mode: 0o640 });
const keytab = path.join(dir, 'agent.keytab');
fs.writeFileSync(keytab, Buffer.from([0x05, 0x02, 0, 0]), { mode: 0o600 });

const tsig = { dns: { auth: 'tsig', key_file: keyFile, gss: undefined } } as unknown as Pick<Config, 'dns'>;
const gss = (over: Partial<NonNullable<Config['dns']['gss']>> = {}): Pick<Config, 'dns'> =>
  ({ dns: { auth: 'gss-tsig', key_file: undefined, gss: { principal: 'failover-agent@EXAMPLE.TEST', keytab, server_principal: undefined, ...over } } }) as unknown as Pick<Config, 'dns'>;

describe('loadSigning', () => {
  it('tsig: the key file, as before', () => {
    const s = loadSigning(tsig);
    expect(s).toMatchObject({ auth: 'tsig', key: { name: 'failover', algorithm: 'hmac-sha256' }, file: keyFile });
    expect(describeSigning(s)).toBe(`TSIG key failover hmac-sha256 (${keyFile})`);
  });

  it('gss-tsig: the keytab checked, the addon loaded; the line says principal and target', () => {
    const fake = {} as GssApi;
    const s = loadSigning(gss(), { loadAddon: () => fake });
    expect(s).toMatchObject({ auth: 'gss-tsig', gss: fake });
    expect(describeSigning(s)).toBe(`GSS-TSIG as failover-agent@EXAMPLE.TEST (keytab ${keytab}) to DNS/<SOA MNAME>`);
    expect(describeSigning(loadSigning(gss({ server_principal: 'DNS/ns1.example.test' }), { loadAddon: () => fake }))).toMatch(/ to DNS\/ns1\.example\.test$/);
  });

  it('gss-tsig without a loadable addon: GSS_ADDON_UNAVAILABLE, exit 78, saying why', () => {
    const missing = path.join(dir, 'gss.node');
    const err = (() => {
      try {
        loadSigning(gss(), { loadAddon: () => loadGssAddon([missing]) });
      } catch (e) {
        return e as Error & { code: string; exitCode: number };
      }
    })();
    expect(err).toMatchObject({ code: 'GSS_ADDON_UNAVAILABLE', exitCode: ExitCode.CONFIG });
    expect(err!.message).toContain(`not found at ${missing}`);
    // A file that is not an addon: dlopen's reason.
    fs.writeFileSync(missing, 'not an ELF');
    expect(() => loadSigning(gss(), { loadAddon: () => loadGssAddon([missing]) })).toThrow(/does not load: /);
  });

  it('gss-tsig with an open keytab: the key file\'s refusal (77) before the addon is even tried', () => {
    const open = path.join(dir, 'open.keytab');
    fs.writeFileSync(open, Buffer.from([0x05, 0x02]), { mode: 0o644 });
    fs.chmodSync(open, 0o644);
    let tried = false;
    expect(() => loadSigning(gss({ keytab: open }), { loadAddon: () => ((tried = true), {} as GssApi) })).toThrow(
      expect.objectContaining({ code: 'KEYFILE_PERMS', exitCode: ExitCode.NOPERM }),
    );
    expect(tried).toBe(false);
  });
});
