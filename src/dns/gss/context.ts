/**
 * The GSS-TSIG context of one agent (or failoverctl run) with its DNS server: negotiated once by
 * TKEY over TCP (tkey.ts) and reused for every read and write, renewed before it expires, and
 * renegotiated when the server says it no longer knows it (BADKEY/BADSIG after a restart: the
 * transport asks through `SignerSession.invalidate` and retries its request once).
 *
 * Each (re)negotiation acquires fresh credentials from the keytab (a private in-memory cache, no
 * kinit, no file), so a renewal never rests on an expiring TGT; acquisition and negotiation share
 * one deadline. One negotiation at a time: concurrent requests wait for the same one.
 *
 * Renewal: once `renewFraction` (0.8) of the context's lifetime has passed, the next request
 * starts a renegotiation in the background and keeps using the live context; once it has expired,
 * requests wait for the new one. A failed background renewal is retried no sooner than
 * RENEW_RETRY_MS later (a KDC outage: the live context keeps working until it expires).
 *
 * `status()` is what the agent's status (and /metrics, and the FailoverGssContextExpiring alert)
 * shows of it: when the context was negotiated and when it expires on the wall clock, and the last
 * failed negotiation, so an operator learns of a KDC outage before the context runs out.
 */
import { systemClock, systemRandom, type Clock, type Random } from '../../clock.js';
import { AgentError, ExitCode } from '../../errors.js';
import { DnsError } from '../errors.js';
import type { SignerSession, TsigSigner } from '../signer.js';
import type { DnsServer } from '../transport.js';
import type { GssApi, GssCredentials } from './addon.js';
import { negotiate as tkeyNegotiate, type GssTsigContext, type NegotiateOptions } from './tkey.js';

export const DEFAULT_RENEW_FRACTION = 0.8;
export const RENEW_RETRY_MS = 30_000;

export interface GssSessionOptions {
  gss: GssApi;
  principal: string;
  keytab: string;
  server: DnsServer;
  /** The acceptor (DNS/ns1.example.com), or how to find it (DNS/<SOA MNAME>), asked once. */
  serverPrincipal: string | (() => Promise<string>);
  /** Deadline of one credential acquisition + negotiation. */
  timeoutMs: number;
  renewFraction?: number;
  clock?: Clock;
  random?: Random;
  /** TKEY negotiation (tkey.ts); a fake in unit tests. */
  negotiate?: (o: NegotiateOptions) => Promise<GssTsigContext>;
  /** Negotiations, renewals and their failures, for the log. */
  onEvent?: (e: GssSessionEvent) => void;
}

export type GssSessionEvent =
  | { kind: 'negotiated'; why: GssNegotiationReason; keyName: string; lifetimeMs: number; tookMs: number }
  | { kind: 'failed'; why: GssNegotiationReason; error: Error };

/** What the agent's status shows of the GSS-TSIG context (AgentStatus.gss; times ISO, UTC, wall clock). */
export interface GssContextStatus {
  /** The Kerberos principal the agent signs as. */
  principal: string;
  /** The acceptor asked for (DNS/ns1.example.com); null until found (DNS/<SOA MNAME>). */
  target: string | null;
  /** TSIG key name of the last context negotiated; null before the first. */
  keyName: string | null;
  /** A context is live: negotiated, not expired, not refused by the server. */
  live: boolean;
  /** When the last context was negotiated; null before the first. */
  negotiatedAt: string | null;
  /**
   * When it stops being usable: its expiry, or when the server refused it (earlier); null before
   * the first. Stays in the past while no new one can be negotiated.
   */
  expiresAt: string | null;
  /** Negotiations that succeeded since start (the first, renewals, renegotiations). */
  negotiations: number;
  /** Negotiations that failed since start (a renewal with the KDC down, after expiry, the first). */
  renewalFailures: number;
  /** The last failed negotiation: the error in words, when, and which one; null if none failed. */
  lastRenewalError: { text: string; at: string; why: GssNegotiationReason } | null;
}

export type GssNegotiationReason = 'first' | 'renewal' | 'expired' | 'rejected';

interface Live {
  ctx: GssTsigContext;
  establishedAt: number;
  renewAt: number;
}

export class GssSession implements SignerSession {
  readonly principal: string;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly negotiateFn: (o: NegotiateOptions) => Promise<GssTsigContext>;
  private live: Live | undefined;
  private pending: Promise<Live> | undefined;
  private lastRenewFailure = -Infinity;
  private servicePrincipal: string | undefined;
  private closed = false;
  /** The last context was refused by the server: the next negotiation says so. */
  private rejected = false;
  /** Contexts negotiated so far (tests, status). */
  negotiations = 0;
  private failures = 0;
  private lastFailure: { text: string; atWallMs: number; why: GssNegotiationReason } | null = null;
  /** The last context negotiated, on the wall clock (its end moved earlier if the server refused it). */
  private lastContext: { keyName: string; negotiatedWallMs: number; endsWallMs: number } | null = null;

  constructor(private readonly o: GssSessionOptions) {
    this.principal = o.principal;
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? systemRandom;
    this.negotiateFn = o.negotiate ?? tkeyNegotiate;
    if (typeof o.serverPrincipal === 'string') this.servicePrincipal = o.serverPrincipal;
  }

  /** The signer of the live context: negotiated first if there is none or it expired; a renewal started once it is due. */
  async acquire(): Promise<TsigSigner> {
    if (this.closed) throw new AgentError('GSS_CLOSED', 'GSS-TSIG: the session is closed', ExitCode.UNAVAILABLE);
    const now = this.clock.monotonicMs();
    const live = this.live;
    if (live && now < live.ctx.expiresAtMs) {
      if (now >= live.renewAt && !this.pending && now - this.lastRenewFailure >= RENEW_RETRY_MS) {
        // Renewed in the background: this request still signs with the live context.
        this.start('renewal').catch(() => {
          this.lastRenewFailure = this.clock.monotonicMs();
        });
      }
      return live.ctx.signer;
    }
    return (await (this.pending ?? this.start(live ? 'expired' : 'first'))).ctx.signer;
  }

  /**
   * The server refused `used` (BADKEY/BADSIG, unsigned: it forgot the context, e.g. restarted).
   * Drops it, so the next acquire negotiates anew; a signer already replaced is left alone.
   */
  invalidate(used: TsigSigner): void {
    if (this.live?.ctx.signer !== used) return;
    const old = this.live.ctx;
    this.live = undefined;
    this.rejected = true;
    this.free(old);
    if (this.lastContext) this.lastContext.endsWallMs = Math.min(this.lastContext.endsWallMs, this.clock.wallMs());
  }

  /** The context as the agent's status shows it (GssContextStatus). */
  status(): GssContextStatus {
    const last = this.lastContext;
    const f = this.lastFailure;
    return {
      principal: this.principal,
      target: this.servicePrincipal ?? null,
      keyName: last?.keyName ?? null,
      live: this.live !== undefined && this.clock.monotonicMs() < this.live.ctx.expiresAtMs,
      negotiatedAt: last ? new Date(last.negotiatedWallMs).toISOString() : null,
      expiresAt: last ? new Date(last.endsWallMs).toISOString() : null,
      negotiations: this.negotiations,
      renewalFailures: this.failures,
      lastRenewalError: f && { text: f.text, at: new Date(f.atWallMs).toISOString(), why: f.why },
    };
  }

  close(): void {
    this.closed = true;
    if (this.live) this.free(this.live.ctx);
    this.live = undefined;
  }

  private free(ctx: GssTsigContext): void {
    try {
      ctx.close();
    } catch {
      // A context still in use by a worker thread is freed by the GC.
    }
  }

  private start(why: 'first' | 'renewal' | 'expired'): Promise<Live> {
    const reason = this.rejected ? 'rejected' : why;
    this.rejected = false;
    const p = this.negotiateOnce(reason).then(
      (live) => {
        const old = this.live;
        this.live = live;
        if (this.pending === p) this.pending = undefined;
        if (old && old.ctx !== live.ctx) this.free(old.ctx);
        return live;
      },
      (err: unknown) => {
        if (this.pending === p) this.pending = undefined;
        this.failures++;
        this.lastFailure = { text: err instanceof Error ? err.message : String(err), atWallMs: this.clock.wallMs(), why: reason };
        this.o.onEvent?.({ kind: 'failed', why: reason, error: err as Error });
        throw err;
      },
    );
    this.pending = p;
    return p;
  }

  private async negotiateOnce(why: GssNegotiationReason): Promise<Live> {
    const started = this.clock.monotonicMs();
    const deadline = started + this.o.timeoutMs;
    const where = `${this.o.server.host}:${this.o.server.port}`;
    const remaining = (): number => Math.max(1, deadline - this.clock.monotonicMs());
    const target = await this.serviceName(remaining());
    const what = `GSS-TSIG context with ${where} (${target}) as ${this.principal}`;
    let cred: GssCredentials | undefined;
    try {
      cred = await withDeadline(this.o.gss.acquireCredentials(this.principal, this.o.keytab), remaining(), this.clock, `${what}: credentials from ${this.o.keytab}`, (late) =>
        this.o.gss.releaseCredentials(late),
      );
      const ctx = await this.negotiateFn({
        gss: this.o.gss,
        cred,
        principal: this.principal,
        server: this.o.server,
        serverPrincipal: target,
        timeoutMs: remaining(),
        clock: this.clock,
        random: this.random,
      });
      const now = this.clock.monotonicMs();
      const lifetime = Math.max(0, ctx.expiresAtMs - started);
      this.negotiations++;
      // The wall time it expires, fixed once: the monotonic lifetime left, from the wall clock now.
      const wall = this.clock.wallMs();
      this.lastContext = { keyName: ctx.keyName, negotiatedWallMs: wall, endsWallMs: wall + Math.max(0, ctx.expiresAtMs - now) };
      this.o.onEvent?.({ kind: 'negotiated', why, keyName: ctx.keyName, lifetimeMs: lifetime, tookMs: now - started });
      return { ctx, establishedAt: started, renewAt: started + lifetime * (this.o.renewFraction ?? DEFAULT_RENEW_FRACTION) };
    } catch (err) {
      throw explain(err, what);
    } finally {
      // The context holds what it needs; the in-memory cache goes now.
      if (cred) this.o.gss.releaseCredentials(cred);
    }
  }

  private async serviceName(timeoutMs: number): Promise<string> {
    if (this.servicePrincipal !== undefined) return this.servicePrincipal;
    const find = this.o.serverPrincipal as () => Promise<string>;
    this.servicePrincipal = await withDeadline(find(), timeoutMs, this.clock, 'GSS-TSIG: finding the server principal (DNS/<SOA MNAME>)');
    return this.servicePrincipal;
  }
}

/** The error with what was being done in front of its message; its class, code and exit status kept. */
function explain(err: unknown, what: string): unknown {
  if (err instanceof Error && !err.message.startsWith(what)) err.message = `${what}: ${err.message}`;
  return err;
}

/** Rejects with DNS_TIMEOUT after `ms` unless `p` settles first; `late` gets a value that came after. */
function withDeadline<T>(p: Promise<T>, ms: number, clock: Clock, what: string, late?: (v: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = clock.setTimer(() => {
      done = true;
      reject(new DnsError('DNS_TIMEOUT', `${what}: no result within ${Math.round(ms)} ms`));
    }, ms);
    p.then(
      (v) => {
        if (done) return late?.(v);
        done = true;
        clock.cancel(timer);
        resolve(v);
      },
      (e: unknown) => {
        if (done) return;
        done = true;
        clock.cancel(timer);
        reject(e);
      },
    );
  });
}
