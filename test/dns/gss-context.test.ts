/**
 * The GSS-TSIG context manager (src/dns/gss/context.ts) on a fake addon and a fake TKEY negotiation:
 * one context reused, renewed at 80% of its lifetime on an injected clock, renegotiated when the
 * server refuses it; and through the real transport against a fake server on 127.0.0.1 that
 * forgets contexts: BADKEY → one renegotiation → the request retried once; BADKEY twice → the
 * error, and no request ever unsigned.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine, type WitnessPort } from '../../src/agent/engine.js';
import { NoCollector } from '../../src/collector/port.js';
import { loadConfig } from '../../src/config/load.js';
import { Metrics } from '../../src/http/metrics.js';
import { nullLogger } from '../../src/log/logger.js';
import { minimalToml } from '../fixtures/minimal-config.js';
import type { Clock } from '../../src/clock.js';
import { ManualClock } from '../fixtures/manual-clock.js';
import { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import type { GssApi, GssContext, GssCredentials } from '../../src/dns/gss/addon.js';
import { GssSession, RENEW_RETRY_MS, type GssSessionEvent, type GssSessionOptions } from '../../src/dns/gss/context.js';
import type { GssTsigContext, NegotiateOptions } from '../../src/dns/gss/tkey.js';
import type { TsigSigner } from '../../src/dns/signer.js';
import { signWith, tsigToCheck, verifiedVerdict } from '../../src/dns/tsig.js';
import { decodeMessage, encodeMessage, encodeRecord, RCODE, type Message, type TsigData } from '../../src/dns/wire.js';

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A signer standing for one context: MAC "mic:<name>"; answers verify when their MAC is "server:<name>". */
function fakeSigner(keyName: string, principal = 'agent@EXAMPLE.TEST'): TsigSigner {
  return {
    keyName,
    algorithm: 'gss-tsig',
    principal,
    sign: (m, now) => signWith(m, keyName, 'gss-tsig', now, 300, () => Buffer.from(`mic:${keyName}`)),
    verify(_buf, decoded, _requestMac, now) {
      const c = tsigToCheck(decoded, keyName, 'gss-tsig');
      if (c.kind !== 'check') return c;
      return c.tsig.mac.equals(Buffer.from(`server:${keyName}`)) ? verifiedVerdict(c.tsig, now) : { kind: 'bad', why: 'MIC does not verify' };
    },
  };
}

/** The addon's credential calls, counted; the negotiation is faked separately. */
function fakeAddon(o: { acquire?: () => Promise<GssCredentials> } = {}): GssApi & { acquired: number; released: number } {
  const api = {
    acquired: 0,
    released: 0,
    acquireCredentials: () => {
      api.acquired++;
      return o.acquire ? o.acquire() : Promise.resolve({ __gss: 'credentials' } as GssCredentials);
    },
    releaseCredentials: () => {
      api.released++;
    },
    createContext: () => ({ __gss: 'context' }) as GssContext,
    initSecContext: () => Promise.reject(new Error('not used')),
    getMic: () => Buffer.alloc(0),
    verifyMic: () => undefined,
    deleteContext: () => undefined,
  };
  return api;
}

/** TKEY faked: contexts ctx1, ctx2… of `lifetimeMs`, or the failures queued in `fail`. */
function fakeNegotiate(clock: Clock, lifetimeMs: number, fail: Error[] = []) {
  const made: { ctx: GssTsigContext; closed: boolean; target: string }[] = [];
  const negotiate = async (o: NegotiateOptions): Promise<GssTsigContext> => {
    await Promise.resolve();
    const err = fail.shift();
    if (err) throw err;
    const keyName = `ctx${made.length + 1}`;
    const entry = { closed: false, target: o.serverPrincipal, ctx: undefined as unknown as GssTsigContext };
    entry.ctx = { keyName, signer: fakeSigner(keyName, o.principal), expiresAtMs: clock.monotonicMs() + lifetimeMs, close: () => (entry.closed = true) };
    made.push(entry);
    return entry.ctx;
  };
  return { negotiate, made };
}

function session(over: Partial<GssSessionOptions> & Pick<GssSessionOptions, 'gss' | 'clock' | 'negotiate'>): GssSession {
  return new GssSession({
    principal: 'agent@EXAMPLE.TEST',
    keytab: '/etc/failover-agent/agent.keytab',
    server: { host: '127.0.0.1', port: 53 },
    serverPrincipal: 'DNS/ns.example.test',
    timeoutMs: 5_000,
    ...over,
  });
}

describe('GssSession on a fake addon and TKEY', () => {
  it('negotiates once and reuses the context; concurrent requests share one negotiation', async () => {
    const clock = new ManualClock();
    const gss = fakeAddon();
    const t = fakeNegotiate(clock, 3_600_000);
    const s = session({ gss, clock, negotiate: t.negotiate });
    const [a, b] = await Promise.all([s.acquire(), s.acquire()]);
    const c = await s.acquire();
    expect(a).toBe(b);
    expect(c).toBe(a);
    expect(a.keyName).toBe('ctx1');
    expect(s.negotiations).toBe(1);
    // Credentials: acquired for the negotiation, the in-memory cache released right after.
    expect(gss).toMatchObject({ acquired: 1, released: 1 });
  });

  it('renews at 80% of the lifetime in the background, signing with the live context meanwhile; frees the old one', async () => {
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 1_000_000);
    const events: GssSessionEvent[] = [];
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, onEvent: (e) => events.push(e) });
    const first = await s.acquire();
    clock.advance(799_999);
    expect(await s.acquire()).toBe(first);
    await flush();
    expect(s.negotiations).toBe(1);
    clock.advance(1);
    // Due: this request still gets the live context; the renewal runs beside it.
    expect(await s.acquire()).toBe(first);
    await flush();
    expect(s.negotiations).toBe(2);
    const second = await s.acquire();
    expect(second.keyName).toBe('ctx2');
    expect(t.made[0]!.closed).toBe(true);
    expect(events.map((e) => (e.kind === 'negotiated' ? e.why : `failed ${e.why}`))).toEqual(['first', 'renewal']);
  });

  it('an expired context is never used: requests wait for the new one', async () => {
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 10_000);
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, renewFraction: 1 });
    await s.acquire();
    clock.advance(10_000);
    expect((await s.acquire()).keyName).toBe('ctx2');
  });

  it('a failed renewal (KDC down) keeps the live context until it expires, retried no sooner than RENEW_RETRY_MS', async () => {
    const clock = new ManualClock();
    const kdcDown = Object.assign(new Error('Cannot contact any KDC for realm'), { code: 'GSS_ERROR' });
    const t = fakeNegotiate(clock, 1_000_000, []);
    const events: GssSessionEvent[] = [];
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, onEvent: (e) => events.push(e) });
    const first = await s.acquire();
    clock.advance(800_000);
    const failing = fakeNegotiate(clock, 1_000_000, [kdcDown]);
    // Swap in the failing negotiation for the renewal.
    (s as unknown as { negotiateFn: typeof failing.negotiate }).negotiateFn = failing.negotiate;
    expect(await s.acquire()).toBe(first);
    await flush();
    expect(events.at(-1)).toMatchObject({ kind: 'failed', why: 'renewal', error: { code: 'GSS_ERROR' } });
    const last = events.at(-1)!;
    expect(last.kind === 'failed' ? last.error.message : '').toMatch(/^GSS-TSIG context with 127\.0\.0\.1:53 \(DNS\/ns\.example\.test\) as agent@EXAMPLE\.TEST: Cannot contact any KDC/);
    clock.advance(RENEW_RETRY_MS - 1);
    expect(await s.acquire()).toBe(first);
    await flush();
    expect(failing.made).toHaveLength(0);
    clock.advance(1);
    expect(await s.acquire()).toBe(first);
    await flush();
    expect((await s.acquire()).keyName).toBe('ctx1'); // the failing fake's first context
    expect(failing.made).toHaveLength(1);
  });

  it('invalidate drops the refused context: the next request renegotiates ("rejected"); a stale invalidate is ignored', async () => {
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 3_600_000);
    const events: GssSessionEvent[] = [];
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, onEvent: (e) => events.push(e) });
    const first = await s.acquire();
    s.invalidate(first);
    expect(t.made[0]!.closed).toBe(true);
    const second = await s.acquire();
    expect(second.keyName).toBe('ctx2');
    s.invalidate(first); // a late refusal of the old one
    expect(await s.acquire()).toBe(second);
    expect(events.map((e) => e.kind === 'negotiated' && e.why)).toEqual(['first', 'rejected']);
  });

  it('credentials that never come: DNS_TIMEOUT at the deadline, naming what was waited for', async () => {
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 3_600_000);
    const s = session({ gss: fakeAddon({ acquire: () => new Promise(() => {}) }), clock, negotiate: t.negotiate, timeoutMs: 4_000 });
    const p = s.acquire().catch((e: unknown) => e);
    await flush();
    clock.advance(4_000);
    const err = await p;
    expect(err).toBeInstanceOf(DnsError);
    expect(err).toMatchObject({ code: 'DNS_TIMEOUT', exitCode: 69 });
    expect((err as Error).message).toMatch(/as agent@EXAMPLE\.TEST: credentials from \/etc\/failover-agent\/agent\.keytab: no result within 4000 ms/);
  });

  it('finds the server principal once (DNS/<SOA MNAME>), then reuses it', async () => {
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 3_600_000);
    let asked = 0;
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, serverPrincipal: async () => (asked++, 'DNS/ns1.example.test') });
    s.invalidate(await s.acquire());
    await s.acquire();
    expect(asked).toBe(1);
    expect(t.made.map((m) => m.target)).toEqual(['DNS/ns1.example.test', 'DNS/ns1.example.test']);
  });
});

// ---------------------------------------------------------------------------------------------
// What the agent's status and /metrics show of the context (AgentStatus.gss).

const WALL0 = 1_700_000_000_000;
const iso = (monotonicMs: number): string => new Date(WALL0 + monotonicMs).toISOString();

describe('GssSession.status: negotiated and expiry times, the last failed renewal', () => {
  it('before the first negotiation: who and to whom, no context yet; the target null until found', async () => {
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 3_600_000);
    expect(session({ gss: fakeAddon(), clock, negotiate: t.negotiate }).status()).toEqual({
      principal: 'agent@EXAMPLE.TEST',
      target: 'DNS/ns.example.test',
      keyName: null,
      live: false,
      negotiatedAt: null,
      expiresAt: null,
      negotiations: 0,
      renewalFailures: 0,
      lastRenewalError: null,
    });
    const found = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, serverPrincipal: async () => 'DNS/ns1.example.test' });
    expect(found.status().target).toBeNull();
    await found.acquire();
    expect(found.status().target).toBe('DNS/ns1.example.test');
  });

  it('a KDC down at renewal: the failure and its error shown, the live context and its expiry kept; after expiry, failures go on; the KDC back moves the expiry', async () => {
    const clock = new ManualClock();
    const kdcDown = Object.assign(new Error('Cannot contact any KDC for realm'), { code: 'GSS_ERROR' });
    const t = fakeNegotiate(clock, 1_000_000, []);
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate });
    await s.acquire();
    expect(s.status()).toMatchObject({ keyName: 'ctx1', live: true, negotiatedAt: iso(1_000), expiresAt: iso(1_001_000), negotiations: 1, renewalFailures: 0 });

    clock.advance(800_000);
    const failing = fakeNegotiate(clock, 1_000_000, [kdcDown, kdcDown, kdcDown]);
    (s as unknown as { negotiateFn: typeof failing.negotiate }).negotiateFn = failing.negotiate;
    await s.acquire();
    await flush();
    let st = s.status();
    expect(st).toMatchObject({ keyName: 'ctx1', live: true, expiresAt: iso(1_001_000), negotiations: 1, renewalFailures: 1 });
    expect(st.lastRenewalError).toEqual({ text: expect.stringMatching(/^GSS-TSIG context with 127\.0\.0\.1:53 \(DNS\/ns\.example\.test\) as agent@EXAMPLE\.TEST: Cannot contact any KDC/), at: iso(801_000), why: 'renewal' });

    // Expired: every request needs a new context and fails; the expiry shown stays in the past.
    clock.advance(200_000);
    await expect(s.acquire()).rejects.toThrow(/Cannot contact any KDC/);
    st = s.status();
    expect(st).toMatchObject({ keyName: 'ctx1', live: false, expiresAt: iso(1_001_000), renewalFailures: 2, lastRenewalError: { at: iso(1_001_000), why: 'expired' } });
    clock.advance(5_000);
    await expect(s.acquire()).rejects.toThrow(/Cannot contact any KDC/);
    expect(s.status().renewalFailures).toBe(3);

    // The KDC is back: a new context, a new expiry; the last failure stays for the record.
    expect((await s.acquire()).keyName).toBe('ctx1'); // the failing fake's first context
    expect(s.status()).toMatchObject({ live: true, negotiatedAt: iso(1_006_000), expiresAt: iso(2_006_000), negotiations: 2, renewalFailures: 3, lastRenewalError: { why: 'expired' } });
  });

  it('a context the server refused ends when refused: its expiry moves to then, no longer live', async () => {
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 3_600_000);
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate });
    const first = await s.acquire();
    clock.advance(60_000);
    s.invalidate(first);
    expect(s.status()).toMatchObject({ keyName: 'ctx1', live: false, negotiatedAt: iso(1_000), expiresAt: iso(61_000) });
    await s.acquire();
    expect(s.status()).toMatchObject({ keyName: 'ctx2', live: true, negotiatedAt: iso(61_000), expiresAt: iso(3_661_000) });
  });

  it('through the engine and /metrics: the status carries it (null with HMAC TSIG), the expiry as unix seconds, the failures as a counter', async () => {
    const clock = new ManualClock();
    const kdcDown = Object.assign(new Error('Cannot contact any KDC for realm'), { code: 'GSS_ERROR' });
    const t = fakeNegotiate(clock, 1_000_000, []);
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, renewFraction: 0.5 });
    await s.acquire();
    clock.advance(500_000);
    (s as unknown as { negotiateFn: typeof t.negotiate }).negotiateFn = fakeNegotiate(clock, 1_000_000, [kdcDown]).negotiate;
    await s.acquire();
    await flush();

    const config = loadConfig('/etc/failover-agent/dr.toml', { text: minimalToml('dr') });
    const witness: WitnessPort = { read: () => Promise.reject(new Error('not read')), write: () => Promise.reject(new Error('not written')) };
    const deps = { config, witness, server: '127.0.0.1:53', zone: 'example.test', health: null, collector: new NoCollector(), logger: nullLogger(), clock };
    const engine = new Engine({ ...deps, signing: s });
    expect(engine.status().gss).toEqual(s.status());
    expect(new Engine(deps).status().gss).toBeNull();

    const body = (await new Metrics({ instance: 'dr', role: 'dr' }, () => engine.status(), { defaultMetrics: false }).render()).body.split('\n');
    expect(body).toContain(`failover_gss_context_expiry_timestamp_seconds ${(WALL0 + 1_001_000) / 1000}`);
    expect(body).toContain('failover_gss_renewal_failures_total 1');
  });
});

// ---------------------------------------------------------------------------------------------
// Through the transport: a fake server that forgets contexts.

let server: dgram.Socket | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

/** Answers signed ("server:<key>") for the key names in `known`, BADKEY (unsigned) for others; records what it got. */
async function forgetfulServer(known: Set<string>): Promise<{ port: number; seen: { keyName: string | null }[] }> {
  const s = dgram.createSocket('udp4');
  server = s;
  const seen: { keyName: string | null }[] = [];
  s.on('message', (q, rinfo) => {
    const d = decodeMessage(q);
    const tsig = d.message.additionals.find((r) => r.type === 'TSIG');
    const keyName = tsig?.name ?? null;
    seen.push({ keyName });
    const base: Message = { ...d.message, flags: { ...d.message.flags, qr: true, aa: true }, additionals: [], answers: [], authorities: [] };
    let reply: Buffer;
    if (keyName !== null && known.has(keyName)) {
      reply = signWith({ ...base, rcode: RCODE.NXDOMAIN }, keyName, 'gss-tsig', Date.now() / 1000, 300, () => Buffer.from(`server:${keyName}`)).wire;
    } else {
      const plain = encodeMessage({ ...base, flags: { ...base.flags, aa: false }, rcode: RCODE.NOTAUTH });
      const t: TsigData = { algorithm: 'gss-tsig', timeSigned: Math.floor(Date.now() / 1000), fudge: 300, mac: Buffer.alloc(0), originalId: d.message.id, error: RCODE.BADKEY, other: Buffer.alloc(0) };
      reply = Buffer.concat([plain, encodeRecord({ name: keyName ?? 'none', type: 'TSIG', class: 'ANY', ttl: 0, data: t })]);
      reply.writeUInt16BE(1, 10);
    }
    s.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return { port: s.address().port, seen };
}

describe('the transport with a GSS session: a server that forgot the context', () => {
  it('BADKEY → one renegotiation → the request retried once, and it succeeds, authenticated', async () => {
    const known = new Set<string>();
    const { port, seen } = await forgetfulServer(known);
    let n = 0;
    const sess = {
      principal: 'agent@EXAMPLE.TEST',
      current: fakeSigner('ctx1'),
      acquire: async () => sess.current,
      invalidate: (used: TsigSigner) => {
        if (used === sess.current) {
          n++;
          sess.current = fakeSigner(`ctx${n + 1}`);
          known.add(sess.current.keyName); // the new context: negotiated with the restarted server
        }
      },
    };
    const c = new DnsClient({ server: { host: '127.0.0.1', port }, session: sess, timeoutMs: 500, retries: 1 });
    const r = await c.read('syslog.example.test', 'A');
    expect(r).toMatchObject({ authenticated: true, rcode: 'NXDOMAIN' });
    expect(n).toBe(1);
    expect(seen).toEqual([{ keyName: 'ctx1' }, { keyName: 'ctx2' }]);
    // And the next request reuses the new context.
    await c.read('syslog.example.test', 'A');
    expect(seen.at(-1)).toEqual({ keyName: 'ctx2' });
  });

  it('BADKEY twice: the error (unauthenticated, exit 77, naming the principal), one renegotiation only, never unsigned', async () => {
    const { port, seen } = await forgetfulServer(new Set());
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 3_600_000);
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, server: { host: '127.0.0.1', port } });
    const c = new DnsClient({ server: { host: '127.0.0.1', port }, session: s, timeoutMs: 500, retries: 1 });
    const err = await c.update('example.test', [], []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DnsError);
    expect(err).toMatchObject({ code: 'DNS_TSIG_BADKEY', authenticated: false, exitCode: 77 });
    expect((err as Error).message).toMatch(/GSS-TSIG context ctx2 as agent@EXAMPLE\.TEST: the server may have lost it/);
    expect(s.negotiations).toBe(2);
    expect(seen).toEqual([{ keyName: 'ctx1' }, { keyName: 'ctx2' }]);
    expect(seen.every((x) => x.keyName !== null)).toBe(true);
  });

  it('a refusal that is not BADKEY/BADSIG is not retried', async () => {
    const { port, seen } = await forgetfulServer(new Set(['ctx1']));
    const clock = new ManualClock();
    const t = fakeNegotiate(clock, 3_600_000);
    const s = session({ gss: fakeAddon(), clock, negotiate: t.negotiate, server: { host: '127.0.0.1', port } });
    const c = new DnsClient({ server: { host: '127.0.0.1', port }, session: s, timeoutMs: 500, retries: 1 });
    // NXDOMAIN signed on an UPDATE: a prerequisite failure, authenticated; no renegotiation.
    const err = await c.update('example.test', [], []).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DNS_PREREQ_FAILED', authenticated: true });
    expect(s.negotiations).toBe(1);
    expect(seen).toHaveLength(1);
  });
});
