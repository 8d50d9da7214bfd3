import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentError, ExitCode } from '../../src/errors.js';
import { GssError, defaultAddonPaths, loadGssAddon } from '../../src/dns/gss/addon.js';

describe('gss addon loading', () => {
  it('says where it looked when the addon is absent (exit 78)', () => {
    const err = (() => {
      try {
        loadGssAddon(['/nonexistent/gss.node']);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ code: 'GSS_ADDON_UNAVAILABLE', exitCode: ExitCode.CONFIG });
    expect((err as Error).message).toContain('/nonexistent/gss.node');
  });

  it('names the dlopen failure of a file that is not an addon', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gss-addon-'));
    const bogus = path.join(dir, 'gss.node');
    writeFileSync(bogus, 'not an ELF file');
    expect(() => loadGssAddon([bogus])).toThrow(/does not load: .*(invalid ELF|file too short)/);
  });

  it('finds the tree build from the sources and from the bundle in dist/', () => {
    const built = path.resolve(__dirname, '../../native/gss/build/Release/gss.node');
    expect(defaultAddonPaths()).toContain(built);
    expect(defaultAddonPaths(path.resolve(__dirname, '../../dist'))).toContain(built);
  });
});

describe('gss addon without a realm', () => {
  const gss = loadGssAddon();

  it('refuses MICs on a context that is not established, in words', () => {
    const ctx = gss.createContext('krb5');
    let err: unknown;
    try {
      gss.getMic(ctx, Buffer.from('x'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GssError);
    expect(err).toMatchObject({ code: 'GSS_ERROR', exitCode: ExitCode.NOPERM });
    expect((err as Error).message).toMatch(/No context has been established/);
    expect(() => gss.verifyMic(ctx, Buffer.from('x'), Buffer.alloc(28))).toThrow(GssError);
    gss.deleteContext(ctx);
  });

  it('checks its arguments', () => {
    expect(() => gss.createContext('ntlm' as 'krb5')).toThrow(/krb5' or 'spnego'/);
    expect(() => gss.getMic({} as ReturnType<typeof gss.createContext>, Buffer.alloc(1))).toThrow(/not a context handle/);
  });

  it('fails acquisition from a missing keytab with the minor status, off the event loop', async () => {
    const p = gss.acquireCredentials('nobody@EXAMPLE.INVALID', '/nonexistent/agent.keytab');
    expect(p).toBeInstanceOf(Promise);
    await expect(p).rejects.toThrow(/gss_acquire_cred_from: No credentials were supplied.*\(minor \d+\)/);
  });
});
