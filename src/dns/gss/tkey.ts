/**
 * GSS-TSIG context negotiation (RFC 3645 §3.1): TKEY queries in mode 3
 * (GSS-API) over ONE TCP connection, each carrying the initiator's token;
 * the server's token comes back in the TKEY answer. The context is ours once
 * gss_init_sec_context says complete AND the server's TSIG on its last answer
 * verifies with it (a MIC over the answer, with no request MAC to chain: the
 * query was unsigned). Kerberos with mutual authentication takes one round trip.
 */
import net from 'node:net';
import { systemClock, systemRandom, type Clock, type Random } from '../../clock.js';
import { DnsError } from '../errors.js';
import type { TsigSigner } from '../signer.js';
import type { DnsServer } from '../transport.js';
import { decodeMessage, encodeMessage, NO_FLAGS, normalizeName, RCODE, rcodeName, TKEY_MODE, type Message, type TkeyData } from '../wire.js';
import type { GssApi, GssContext, GssCredentials, GssMech } from './addon.js';
import { GSS_TSIG, gssTsigSigner } from './signer.js';

export interface NegotiateOptions {
  gss: GssApi;
  cred: GssCredentials;
  /** The initiator principal, for messages (the server's policy names it). */
  principal: string;
  server: DnsServer;
  /** The acceptor, e.g. DNS/ns1.example.com (DNS/<SOA MNAME> by default, as nsupdate). */
  serverPrincipal: string;
  /** For the whole negotiation (KDC calls included). */
  timeoutMs: number;
  mech?: GssMech;
  clock?: Clock;
  random?: Random;
}

export interface GssTsigContext {
  signer: TsigSigner;
  keyName: string;
  /** Monotonic ms at which the GSS-API context expires (renew before). */
  expiresAtMs: number;
  /** Frees the context (the server forgets it on its own). */
  close(): void;
}

/** Client-chosen and unique (RFC 2930 §2.1), in nsupdate's form: <number>.sig-<server host>. */
function keyNameFor(serverPrincipal: string, random: Random): string {
  const host = serverPrincipal.replace(/@.*$/, '').split('/')[1] ?? 'server';
  return `${random.below(0x7fffffff)}.sig-${normalizeName(host)}`;
}

/** A TCP connection that hands out whole DNS messages in order. */
class TcpChannel {
  private buffered = Buffer.alloc(0);
  private waiting: { resolve: (m: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failed: Error | undefined;
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.deliver();
    });
    const fail = (err: Error): void => {
      this.failed ??= err;
      this.waiting?.reject(this.failed);
      this.waiting = undefined;
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed by the server')));
  }

  static open(server: DnsServer): Promise<TcpChannel> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: server.host, port: server.port });
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new TcpChannel(sock));
      });
    });
  }

  private deliver(): void {
    if (!this.waiting || this.buffered.length < 2) return;
    const n = this.buffered.readUInt16BE(0);
    if (this.buffered.length < 2 + n) return;
    const msg = Buffer.from(this.buffered.subarray(2, 2 + n));
    this.buffered = this.buffered.subarray(2 + n);
    const w = this.waiting;
    this.waiting = undefined;
    w.resolve(msg);
  }

  exchange(wire: Buffer): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(wire.length, 0);
    this.sock.write(Buffer.concat([len, wire]));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.deliver();
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Rejects with DNS_TIMEOUT after `ms` unless `p` settles first. */
function withDeadline<T>(p: Promise<T>, ms: number, clock: Clock, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = clock.setTimer(() => reject(new DnsError('DNS_TIMEOUT', `${what}: no result within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clock.cancel(timer);
        resolve(v);
      },
      (e: unknown) => {
        clock.cancel(timer);
        reject(e);
      },
    );
  });
}

const MAX_ROUNDS = 4;

/** Negotiates a GSS-TSIG context with `server`; rejects with DnsError or GssError. */
export async function negotiate(o: NegotiateOptions): Promise<GssTsigContext> {
  const clock = o.clock ?? systemClock;
  const random = o.random ?? systemRandom;
  const { gss } = o;
  const keyName = keyNameFor(o.serverPrincipal, random);
  const where = `${o.server.host}:${o.server.port}`;
  const ctx = gss.createContext(o.mech ?? 'krb5');
  const startedAt = clock.monotonicMs();
  let channel: TcpChannel | undefined;
  const run = async (): Promise<GssTsigContext> => {
    let step = await gss.initSecContext(o.cred, ctx, o.serverPrincipal, null);
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      channel ??= await TcpChannel.open(o.server).catch((err: Error) => {
        throw new DnsError('DNS_UNREACHABLE', `TKEY: cannot connect to ${where} over TCP: ${err.message}`, {}, { cause: err });
      });
      const now = Math.floor(clock.wallMs() / 1000);
      const query = tkeyQuery(random.below(0x10000), keyName, now, step.outputToken);
      const answer = await channel.exchange(encodeMessage(query));
      const decoded = decodeMessage(answer);
      const tkey = tkeyAnswer(decoded.message, query, where);
      step = await gss.initSecContext(o.cred, ctx, o.serverPrincipal, tkey.key);
      if (!step.complete) continue;
      // Complete: the answer carrying the last token must be signed with the new context.
      const signer = contextSigner(gss, ctx, keyName, o.principal);
      const v = signer.verify(answer, decoded, Buffer.alloc(0), clock.wallMs() / 1000);
      if (v.kind !== 'ok') {
        throw new DnsError('DNS_TSIG_UNSIGNED', `TKEY: the answer from ${where} that completed the GSS-API context is not signed with it (${v.kind}${v.kind === 'bad' ? `: ${v.why}` : ''}); not trusted`);
      }
      const lifetimeMs = Math.min(step.expiresInSeconds, 0x7fffffff) * 1000;
      return { signer, keyName, expiresAtMs: startedAt + lifetimeMs, close: () => gss.deleteContext(ctx) };
    }
    throw new DnsError('DNS_TSIG_BADKEY', `TKEY: the GSS-API context with ${where} was not complete after ${MAX_ROUNDS} rounds`);
  };
  try {
    return await withDeadline(run(), o.timeoutMs, clock, `GSS-TSIG negotiation with ${where} as ${o.principal}`);
  } catch (err) {
    // A worker thread may still hold the context after a deadline: delete it once free.
    const drop = (): void => {
      try {
        gss.deleteContext(ctx);
      } catch {
        clock.setTimer(drop, 100);
      }
    };
    drop();
    throw err;
  } finally {
    channel?.close();
  }
}

function contextSigner(gss: GssApi, ctx: GssContext, keyName: string, principal: string): TsigSigner {
  return gssTsigSigner(keyName, { getMic: (m) => gss.getMic(ctx, m), verifyMic: (m, mic) => gss.verifyMic(ctx, m, mic) }, { principal });
}

function tkeyQuery(id: number, keyName: string, now: number, token: Buffer): Message {
  const data: TkeyData = {
    algorithm: GSS_TSIG,
    inception: now,
    // What the client would like; the server decides (the context's own lifetime rules).
    expiration: now + 86_400,
    mode: TKEY_MODE.GSSAPI,
    error: 0,
    key: token,
    other: Buffer.alloc(0),
  };
  return {
    id,
    opcode: 'QUERY',
    flags: NO_FLAGS,
    rcode: 0,
    questions: [{ name: keyName, type: 'TKEY', class: 'ANY' }],
    answers: [],
    authorities: [],
    // RFC 3645 §3.1.1: the TKEY record goes in the additional section (as nsupdate -g sends it).
    additionals: [{ name: keyName, type: 'TKEY', class: 'ANY', ttl: 0, data }],
  };
}

/** The server's TKEY record in an answer to `query`, or a DnsError saying what was wrong. */
function tkeyAnswer(m: Message, query: Message, where: string): TkeyData {
  const keyName = query.questions[0]!.name;
  if (m.id !== query.id || !m.flags.qr) throw new DnsError('DNS_MALFORMED', `TKEY: ${where} answered another message (id ${m.id})`);
  if (m.rcode !== RCODE.NOERROR) {
    const code = m.rcode === RCODE.REFUSED ? 'DNS_REFUSED' : m.rcode === RCODE.NOTAUTH ? 'DNS_NOTAUTH' : 'DNS_RCODE';
    throw new DnsError(code, `TKEY: ${where} answered ${rcodeName(m.rcode)}`, { rcode: rcodeName(m.rcode) });
  }
  const rr = m.answers.find((r) => r.type === 'TKEY' && normalizeName(r.name) === normalizeName(keyName));
  if (!rr) throw new DnsError('DNS_MALFORMED', `TKEY: the answer from ${where} has no TKEY record for ${keyName}`);
  const t = rr.data as TkeyData;
  if (t.error !== 0) {
    const code = t.error === RCODE.BADKEY ? 'DNS_TSIG_BADKEY' : t.error === RCODE.BADSIG ? 'DNS_TSIG_BADSIG' : 'DNS_RCODE';
    throw new DnsError(code, `TKEY: ${where} refused the GSS-API token: ${rcodeName(t.error)}`, { rcode: rcodeName(t.error) });
  }
  if (t.mode !== TKEY_MODE.GSSAPI || normalizeName(t.algorithm) !== GSS_TSIG) {
    throw new DnsError('DNS_MALFORMED', `TKEY: ${where} answered mode ${t.mode} algorithm ${t.algorithm}, not GSS-API gss-tsig`);
  }
  return t;
}
