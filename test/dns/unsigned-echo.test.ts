/**
 * Samba's internal DNS answers every error (NXRRSET, SERVFAIL, ...) to a signed request with the
 * request itself sent back, QR and the rcode set: its TSIG is OURS, copied, not a MAC of the
 * server's. Such an answer proves nothing, but it is the server's last word: the exchange ends at
 * once with an unauthenticated DNS_UNSIGNED_ERROR (never a resend, never the whole retry budget).
 * Only OUR request's MAC counts as an echo: an error under any other MAC is dropped, as before.
 * The server is a stand-in on 127.0.0.1 (test/dns/samba-ad.int.test.ts has the real one).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import { change, prereq } from '../../src/dns/update.js';
import { decodeMessage, RCODE } from '../../src/dns/wire.js';

const KEY = { name: 'failover-key', algorithm: 'hmac-sha256' as const, secret: Buffer.alloc(32, 1) };
const A = { name: 'syslog.example.test', type: 'A' as const };

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** The request back, QR and `rcode` set (Samba's error answer); `mac` replaces the MAC bytes if given. */
function echo(q: Buffer, rcode: number, mac?: (m: Buffer) => void): Buffer {
  const reply = Buffer.from(q);
  reply[2] = 0x80 | (q[2]! & 0x78);
  reply[3] = rcode;
  if (mac) {
    const d = decodeMessage(reply);
    const t = d.message.additionals.at(-1)!.data as { mac: Buffer };
    const at = reply.indexOf(t.mac, d.tsigOffset);
    const forged = Buffer.from(t.mac);
    mac(forged);
    forged.copy(reply, at);
  }
  return reply;
}

async function udpServer(answer: (q: Buffer) => Buffer): Promise<{ port: number; received: () => number }> {
  const s = dgram.createSocket('udp4');
  let n = 0;
  s.on('message', (q, rinfo) => {
    n++;
    s.send(answer(q), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  closers.push(() => s.close());
  return { port: s.address().port, received: () => n };
}

async function tcpServer(answer: (q: Buffer) => Buffer): Promise<{ port: number; received: () => number }> {
  let n = 0;
  const srv = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        n++;
        const a = answer(Buffer.from(q));
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        sock.write(Buffer.concat([len, a]));
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  closers.push(() => srv.close());
  return { port: (srv.address() as net.AddressInfo).port, received: () => n };
}

const client = (port: number, tcp = false): DnsClient => new DnsClient({ server: { host: '127.0.0.1', port }, key: KEY, timeoutMs: 400, retries: 2, tcp });

describe('an error answered with our own signature copied back (Samba)', () => {
  it.each([
    ['NXRRSET', RCODE.NXRRSET, false],
    ['SERVFAIL', RCODE.SERVFAIL, false],
    ['NXRRSET over TCP', RCODE.NXRRSET, true],
  ] as const)('%s: DNS_UNSIGNED_ERROR at once, unauthenticated, one request sent', async (name, rcode, tcp) => {
    const srv = await (tcp ? tcpServer : udpServer)((q) => echo(q, rcode));
    const t0 = performance.now();
    const err = await client(srv.port, tcp)
      .update('example.test', prereq.rrsetEquals(A, ['10.0.0.1']), [change.deleteRrset(A)])
      .catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(300);
    expect(err).toBeInstanceOf(DnsError);
    const e = err as DnsError;
    expect(e).toMatchObject({ code: 'DNS_UNSIGNED_ERROR', authenticated: false, exitCode: 69 });
    expect(e.rcode).toBe(name.split(' ')[0]);
    expect(e.message).toMatch(/without a signature of its own \(it copied our request's back.*\): not trusted, so what the server did is unknown until a signed read/);
    expect(srv.received()).toBe(1);
  });

  it('an error under a MAC that is not ours is dropped as before: the budget runs out, every attempt sent', async () => {
    const srv = await udpServer((q) => echo(q, RCODE.NXRRSET, (mac) => (mac[0] = mac[0]! ^ 1)));
    const err = await client(srv.port)
      .update('example.test', [], [change.deleteRrset(A)])
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DNS_TIMEOUT' });
    expect((err as Error).message).toMatch(/TSIG does not verify/);
    expect(srv.received()).toBe(3);
  });

  it('a NOERROR with our own MAC copied back is never accepted', async () => {
    const srv = await udpServer((q) => echo(q, RCODE.NOERROR));
    const err = await client(srv.port)
      .update('example.test', [], [change.deleteRrset(A)])
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DNS_TIMEOUT' });
    expect(srv.received()).toBe(3);
  });
});
