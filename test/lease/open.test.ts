/**
 * openWitness (src/lease/open.ts) with GSS-TSIG: when finding the zone fails, the session it made
 * is closed before the error goes up (the caller never gets it to close: check-config, failoverctl).
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { GssApi, GssContext, GssCredentials } from '../../src/dns/gss/addon.js';
import { GssSession } from '../../src/dns/gss/context.js';
import type { DnsSigning } from '../../src/dns/signing.js';
import { openWitness } from '../../src/lease/open.js';

/** An addon whose credentials never come: the session fails, as a KDC out of reach would. */
const addon = {
  acquireCredentials: () => Promise.reject(new Error('no KDC (test)')),
  releaseCredentials: () => undefined,
  createContext: () => ({ __gss: 'context' }) as GssContext,
  initSecContext: () => Promise.reject(new Error('not used')),
  getMic: () => Buffer.alloc(0),
  verifyMic: () => undefined,
  deleteContext: () => undefined,
} as unknown as GssApi;

let silent: dgram.Socket | undefined;
afterEach(() => {
  silent?.close();
  silent = undefined;
  vi.restoreAllMocks();
});

describe('openWitness with GSS-TSIG', () => {
  it('closes its session when the zone cannot be found', async () => {
    // A DNS server that never answers (on loopback), no dns.zone: the zone is looked up, and fails.
    silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent!.bind(0, '127.0.0.1', r));
    const port = silent.address().port;
    const config = loadConfig('/etc/failover-agent/dr.toml', {
      text: `role = "dr"
[sites]
primary = "10.10.10.10"
dr = "10.20.20.20"
[dns]
record = "syslog.example.test"
server = "127.0.0.1:${port}"
auth = "gss-tsig"
timeout = "200ms"
retries = 0
[dns.gss]
principal = "failover-agent@EXAMPLE.TEST"
keytab = "failover.keytab"
server_principal = "DNS/ns.example.test@EXAMPLE.TEST"
`,
    });
    expect(config.dns.zone).toBeUndefined();
    const signing: DnsSigning = { auth: 'gss-tsig', gss: addon, config: config.dns.gss! } as DnsSigning;
    const close = vi.spyOn(GssSession.prototype, 'close');
    await expect(openWitness(config, signing)).rejects.toThrow(/no KDC \(test\)/);
    expect(close).toHaveBeenCalledTimes(1);
  });
});
