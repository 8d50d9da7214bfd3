/**
 * A server that answers a key it does not accept with an UNSIGNED NOTAUTH or REFUSED (PowerDNS
 * does, instead of BADSIG/BADKEY): the error is untrusted AND tells the operator what to check.
 * The server is a stand-in on 127.0.0.1; the real PowerDNS's unsigned REFUSED: test/cli/setup-powerdns.int.test.ts.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import { RCODE } from '../../src/dns/wire.js';

let fake: dgram.Socket | undefined;
afterEach(() => fake?.close());

/** Answers every query with its header and question only, QR set, the given rcode, no TSIG. */
async function unsignedServer(rcode: number): Promise<number> {
  const s = dgram.createSocket('udp4');
  fake = s;
  s.on('message', (q, rinfo) => {
    let end = 12;
    while (q[end] !== 0) end += q[end]! + 1;
    const reply = Buffer.from(q.subarray(0, end + 5));
    reply[2] = 0x80 | (q[2]! & 0x78); // QR, the request's opcode
    reply[3] = rcode;
    reply.writeUInt16BE(0, 6); // no answers
    reply.writeUInt16BE(0, 8);
    reply.writeUInt16BE(0, 10); // no additional records: no TSIG
    s.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return s.address().port;
}

describe('unsigned NOTAUTH / REFUSED to a signed request', () => {
  it.each([
    ['NOTAUTH', RCODE.NOTAUTH],
    ['REFUSED', RCODE.REFUSED],
  ])('%s: untrusted, and the message names key name, secret and update policy', async (name, rcode) => {
    const port = await unsignedServer(rcode);
    const c = new DnsClient({
      server: { host: '127.0.0.1', port },
      key: { name: 'failover-key', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 1) },
      timeoutMs: 150,
      retries: 1,
    });
    const err = await c.read('syslog.example.test', 'A').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DnsError);
    const e = err as DnsError;
    expect(e.code).toBe('DNS_TSIG_UNSIGNED');
    expect(e.authenticated).toBe(false);
    expect(e.exitCode).toBe(77);
    expect(e.message).toContain(`unsigned ${name} reply`);
    expect(e.message).toContain('"failover-key" (hmac-sha256)');
    expect(e.message).toMatch(/secret in dns\.key_file/);
    expect(e.message).toMatch(/update policy grants this key the failover record and the lease/);
  });
});
