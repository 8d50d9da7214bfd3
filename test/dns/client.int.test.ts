/**
 * The DNS client and the lease CAS against REAL servers: BIND 9 and Knot,
 * each started on loopback by the fixtures. Both must accept the same client.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TsigKey } from '../../src/config/keyfile.js';
import { DnsClient } from '../../src/dns/client.js';
import { Witness, type Snapshot } from '../../src/lease/witness.js';
import { data, rejection } from '../fixtures/dns-assert.js';
import { freePort, startServer, type DnsServerFixture, type TestKey } from '../fixtures/dns-servers.js';
import { startTruncatingProxy } from '../fixtures/truncating-proxy.js';
import { systemClock } from '../../src/clock.js';

const SITES = { primary: '10.10.10.10', dr: '10.20.20.20' };
// Generous per-attempt timeouts: these tests are about behaviour, not speed, and Knot can take
// over a second to answer an update on a loaded 2-core machine.

export function tsigKey(k: TestKey, override: Partial<TsigKey> = {}): TsigKey {
  return { name: k.name, algorithm: k.algorithm, secret: Buffer.from(k.secret, 'base64'), ...override };
}

describe.each(['bind', 'knot'] as const)('against %s', (kind) => {
  let srv: DnsServerFixture;
  let client: DnsClient;
  let witness: Witness;
  const witnessFor = (c: DnsClient): Witness =>
    new Witness(c, { zone: srv.zone, record: srv.record, leaseName: srv.leaseName, ttlSeconds: 30 });

  beforeAll(async () => {
    srv = await startServer(kind);
    client = new DnsClient({ server: { host: srv.host, port: srv.port }, key: tsigKey(srv.key), timeoutMs: 3000, retries: 1 });
    witness = witnessFor(client);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('reads authoritatively, signed, and finds the zone from the server', async () => {
    const soa = await client.soa(srv.zone);
    expect(soa.mname).toBe('ns.example.test');
    expect(await client.findZone(srv.record)).toBe(srv.zone);
    const r = await client.read(srv.record, 'A');
    expect(r.authenticated).toBe(true);
    expect(r.values).toEqual([]);
    expect(Math.abs(r.offsetSeconds!)).toBeLessThanOrEqual(2);
  });

  it('applies a good CAS: init, renew, takeover, each one message with prerequisites', async () => {
    const empty = await witness.read();
    expect(empty.addresses).toEqual([]);
    expect(empty.leaseText).toBeNull();
    const now = Math.floor(Date.now() / 1000);
    const init = await witness.init(empty, SITES, now, false);
    expect(await witness.read()).toMatchObject({ addresses: ['10.10.10.10'], lease: { holder: 'primary', epoch: 1, seq: 0 } });

    const renewed = await witness.renew(init.snapshot, now + 1);
    const afterRenew = await witness.read();
    expect(afterRenew.lease).toEqual({ holder: 'primary', epoch: 1, seq: 1, at: now + 1 });
    expect(renewed.snapshot.leaseText).toEqual(afterRenew.leaseText);

    await witness.transfer(afterRenew, 'dr', SITES, now + 2);
    expect(await witness.read()).toMatchObject({ addresses: ['10.20.20.20'], lease: { holder: 'dr', epoch: 2, seq: 2 } });
  });

  it('refuses a stale CAS as a conflict and changes nothing', async () => {
    const before = await witness.read();
    const stale: Snapshot = { ...before, addresses: ['10.10.10.10'] };
    const err = await rejection(witness.transfer(stale, 'primary', SITES, Date.now() / 1000));
    expect(err.code).toBe('DNS_PREREQ_FAILED');
    expect(err.rcode).toBe('NXRRSET');
    expect(err.authenticated).toBe(true);
    expect(err.exitCode).toBe(1);
    // A stale lease with the right address is refused too.
    const staleLease: Snapshot = { ...before, leaseText: ['v=1 holder=dr epoch=2 seq=1 at=1'] };
    expect((await rejection(witness.renew(staleLease, Date.now() / 1000))).code).toBe('DNS_PREREQ_FAILED');
    expect(data(await witness.read())).toEqual(data(before));
  });

  it('wrong secret: BADSIG, from an unsigned reply that is not trusted', async () => {
    const before = await witness.read();
    const bad = new DnsClient({
      server: { host: srv.host, port: srv.port },
      key: tsigKey(srv.key, { secret: Buffer.alloc(32, 7) }),
      timeoutMs: 3000,
      retries: 0,
    });
    const err = await rejection(witnessFor(bad).renew(before, Date.now() / 1000));
    expect(err.code).toBe('DNS_TSIG_BADSIG');
    expect(err.authenticated).toBe(false);
    expect(err.exitCode).toBe(77);
    expect(data(await witness.read())).toEqual(data(before));
  });

  it('unknown key: BADKEY', async () => {
    const bad = new DnsClient({
      server: { host: srv.host, port: srv.port },
      key: tsigKey(srv.key, { name: 'no-such-key' }),
      timeoutMs: 3000,
      retries: 0,
    });
    const err = await rejection(bad.read(srv.record, 'A'));
    expect(err.code).toBe('DNS_TSIG_BADKEY');
    expect(err.authenticated).toBe(false);
  });

  it('an unsigned update is refused', async () => {
    const before = await witness.read();
    const unsigned = new DnsClient({ server: { host: srv.host, port: srv.port }, timeoutMs: 3000, retries: 0 });
    const err = await rejection(witnessFor(unsigned).renew(before, Date.now() / 1000));
    // BIND answers REFUSED, Knot NOTAUTH: both mean "not allowed".
    expect(['DNS_REFUSED', 'DNS_NOTAUTH']).toContain(err.code);
    expect(err.exitCode).toBe(77);
    expect(data(await witness.read())).toEqual(data(before));
  });

  it('a clock 1000 s off gets BADTIME with the offset reported', async () => {
    const skewed = new DnsClient({
      server: { host: srv.host, port: srv.port },
      key: tsigKey(srv.key),
      timeoutMs: 3000,
      retries: 0,
      clock: { ...systemClock, wallMs: () => Date.now() - 1_000_000 },
    });
    const err = await rejection(witnessFor(skewed).renew(await witness.read(), Date.now() / 1000));
    expect(err.code).toBe('DNS_TSIG_BADTIME');
    expect(err.offsetSeconds).toBeGreaterThan(990);
    expect(err.offsetSeconds).toBeLessThan(1010);
  });

  it('hmac-sha512 keys work too', async () => {
    const c512 = new DnsClient({ server: { host: srv.host, port: srv.port }, key: tsigKey(srv.key512), timeoutMs: 3000, retries: 0 });
    const w = witnessFor(c512);
    const seen = await w.read();
    const r = await w.renew(seen, Date.now() / 1000);
    expect(r.snapshot.lease!.seq).toBe(seen.lease!.seq + 1);
    expect((await w.read()).lease).toEqual(r.snapshot.lease);
  });

  it('TCP path: reads and a CAS over TCP', async () => {
    const tcp = new DnsClient({ server: { host: srv.host, port: srv.port }, key: tsigKey(srv.key), timeoutMs: 3000, retries: 0, tcp: true });
    const w = witnessFor(tcp);
    const seen = await w.read();
    const r = await tcp.update(srv.zone, [], []);
    expect(r.transport).toBe('tcp');
    expect(r.authenticated).toBe(true);
    const wr = await w.renew(seen, Date.now() / 1000);
    expect((await witness.read()).lease).toEqual(wr.snapshot.lease);
  });

  it('a truncated UDP reply makes it retry over TCP', async () => {
    const proxy = await startTruncatingProxy({ host: srv.host, port: srv.port });
    try {
      const c = new DnsClient({ server: { host: proxy.host, port: proxy.port }, key: tsigKey(srv.key), timeoutMs: 3000, retries: 1 });
      const seen = await witnessFor(c).read();
      expect(data(seen)).toEqual(data(await witness.read()));
      const r = await c.update(srv.zone, [], []);
      expect(r.transport).toBe('tcp');
      expect(proxy.udpQueries).toBeGreaterThanOrEqual(3);
      expect(proxy.tcpQueries).toBeGreaterThanOrEqual(3);
    } finally {
      await proxy.stop();
    }
  });

  it('recognises its own write when the first answer was lost (retry meets NXRRSET)', async () => {
    // A UDP relay that drops the server's first answer: the update is applied,
    // the client retries, the retry's prerequisite no longer holds.
    const relay = dgram.createSocket('udp4');
    const upstream = dgram.createSocket('udp4');
    let client: dgram.RemoteInfo | undefined;
    let answers = 0;
    relay.on('message', (msg, rinfo) => {
      client = rinfo;
      upstream.send(msg, srv.port, srv.host);
    });
    upstream.on('message', (msg) => {
      if (answers++ === 0 || !client) return;
      relay.send(msg, client.port, client.address);
    });
    await new Promise<void>((r) => relay.bind(0, '127.0.0.1', r));
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
    try {
      const c = new DnsClient({ server: { host: '127.0.0.1', port: relay.address().port }, key: tsigKey(srv.key), timeoutMs: 1000, retries: 2 });
      const seen = await witness.read();
      const r = await witnessFor(c).renew(seen, Date.now() / 1000);
      expect(r.recovered).toBe(true);
      expect((await witness.read()).lease).toEqual({ ...seen.lease, seq: seen.lease!.seq + 1, at: r.snapshot.lease!.at });
    } finally {
      relay.close();
      upstream.close();
    }
  });
});

describe('faults without a real answer', () => {
  it('server down: DNS_TIMEOUT within timeout × (retries + 1) plus slack', async () => {
    const port = await freePort();
    const c = new DnsClient({ server: { host: '127.0.0.1', port }, key: { name: 'k', algorithm: 'hmac-sha256', secret: Buffer.alloc(32) }, timeoutMs: 200, retries: 2 });
    const t0 = performance.now();
    const err = await rejection(c.read('syslog.example.test', 'A'));
    const elapsed = performance.now() - t0;
    expect(err.code).toBe('DNS_TIMEOUT');
    expect(err.exitCode).toBe(69);
    expect(elapsed).toBeGreaterThanOrEqual(590);
    expect(elapsed).toBeLessThan(600 + 250);
  });

  it('spoofed, malformed and unsigned replies are dropped, never believed', async () => {
    const fake = dgram.createSocket('udp4');
    const dropped: string[] = [];
    fake.on('message', (q, rinfo) => {
      // Garbage, then a reply with the right ID but no TSIG, then one with a forged MAC.
      fake.send(Buffer.from([q[0]!, q[1]!, 0x81]), rinfo.port, rinfo.address);
      const unsigned = Buffer.from(q);
      unsigned[2] = 0x84; // QR, AA
      unsigned.writeUInt16BE(0, 10); // drop the TSIG (ARCOUNT 0)
      const trimmed = unsigned.subarray(0, 12 + questionLength(q));
      fake.send(trimmed, rinfo.port, rinfo.address);
      const forged = Buffer.from(q);
      forged[2] = 0x84;
      forged[forged.length - 20] ^= 0xff; // inside the MAC
      fake.send(forged, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => fake.bind(0, '127.0.0.1', r));
    try {
      const c = new DnsClient({
        server: { host: '127.0.0.1', port: fake.address().port },
        key: { name: 'k', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 1) },
        timeoutMs: 200,
        retries: 1,
        onDropped: (why) => dropped.push(why),
      });
      const err = await rejection(c.read('syslog.example.test', 'A'));
      expect(['DNS_TIMEOUT', 'DNS_TSIG_UNSIGNED']).toContain(err.code);
      expect(err.authenticated).toBe(false);
      expect(dropped.some((d) => /malformed/.test(d))).toBe(true);
      expect(dropped.some((d) => /unsigned/.test(d))).toBe(true);
      expect(dropped.some((d) => /TSIG does not verify/.test(d))).toBe(true);
    } finally {
      fake.close();
    }
  });
});

function questionLength(q: Buffer): number {
  let i = 12;
  while (q[i] !== 0) i += q[i]! + 1;
  return i + 1 + 4 - 12;
}
