/**
 * One request/response exchange with bounded time: UDP first, TCP on
 * truncation or when asked, `retries` extra attempts, each re-signed with a
 * fresh time and a fresh ID.
 *
 * A reply is accepted only if it comes from the server's address and port,
 * carries the ID of one of our attempts, echoes our question, and (with a key)
 * verifies against that attempt's request MAC. Anything else is dropped and
 * counted, so a spoofed or malformed datagram can at most cost us a timeout.
 * Earlier attempts keep listening: a slow answer to attempt 1 still counts.
 * One exception ends the exchange at once, unauthenticated: an error rcode whose
 * TSIG carries our own request's MAC copied back (Samba's AD DNS answers every
 * error so). It proves nothing, and it cannot be made by anyone who did not see
 * the request; the caller treats the outcome as unknown and reads, signed.
 *
 * With a key, a UDP socket that served a clean exchange (first attempt
 * answered, nothing dropped) is kept, unref'd, for the next exchange instead
 * of being closed: creating, binding and closing a socket per exchange costs
 * about as much as signing. Trust never rests on the source port then (every
 * reply must carry a MAC over our request MAC); still, a socket is retired
 * after SOCKET_MAX_AGE_MS, and at once after a timeout, a dropped datagram or
 * an error, so the port keeps changing and no stale reply can reach a later
 * exchange. Unsigned transports (probes, tests) keep one socket per exchange.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { TsigKey } from '../config/keyfile.js';
import { sleep, systemClock, systemRandom, type Clock, type Random, type TimerHandle } from '../clock.js';
import { DnsError } from './errors.js';
import { hmacSigner, type SignerSession, type TsigSigner } from './signer.js';
import type { TsigVerdict } from './tsig.js';
import { decodeMessage, encodeMessage, normalizeName, rcodeName, RCODE, type Decoded, type Message, type TsigData } from './wire.js';

export interface DnsServer {
  host: string;
  port: number;
}

export interface TransportOptions {
  server: DnsServer;
  /** Without a key requests go unsigned and unsigned replies are accepted (probes and tests only). */
  key?: TsigKey;
  /** Signs instead of `key` (GSS-TSIG); `key` alone means HMAC TSIG with it. */
  signer?: TsigSigner;
  /**
   * Signs instead of `key` and `signer`: the signer is asked for before each exchange, and a
   * request the server refuses with an unsigned BADKEY/BADSIG is retried ONCE after
   * `invalidate` (GSS-TSIG: the server forgot the context). Never unsigned.
   */
  session?: SignerSession;
  timeoutMs: number;
  retries: number;
  /** Use TCP from the first attempt. */
  tcp?: boolean;
  /** Time: TSIG's (wallMs; tests sign with a skewed one), attempt deadlines, timers (monotonicMs). Default the system clock. */
  clock?: Clock;
  /** Message ids (default: the CSPRNG). */
  random?: Random;
  /** Called for each dropped reply, for logs and metrics. */
  onDropped?: (why: string) => void;
}

export interface Exchange {
  response: Message;
  /** True when the response's TSIG verified against our request. */
  authenticated: boolean;
  /** Server clock minus ours (s), from a verified TSIG; undefined without one. */
  offsetSeconds?: number;
  serverTime?: number;
  /** TSIG error field of a verified response (0 normally, BADTIME...). */
  tsigError: number;
  transport: 'udp' | 'tcp';
  attempts: number;
  rttMs: number;
}

interface Attempt {
  id: number;
  mac: Buffer;
  sentAt: number;
}

/** What a candidate reply means for the exchange. */
type Judgement =
  | { kind: 'drop'; why: string }
  | { kind: 'truncated' }
  | { kind: 'unsigned-error'; message: Message; error: number }
  | { kind: 'echo'; message: Message }
  | { kind: 'accept'; exchange: Omit<Exchange, 'transport' | 'attempts' | 'rttMs'> };

/**
 * The answer carries OUR request's MAC in its TSIG, copied back, instead of a MAC of its own: how
 * Samba's internal DNS answers every error (NXRRSET, SERVFAIL, ...) to a GSS-TSIG request.
 */
function echoesRequestMac(decoded: Decoded, requestMac: Buffer): boolean {
  if (decoded.tsigOffset === undefined || requestMac.length === 0) return false;
  const t = decoded.message.additionals[decoded.message.additionals.length - 1]!.data as TsigData;
  return t.mac.length === requestMac.length && t.mac.equals(requestMac);
}

function sameQuestion(a: Message, b: Message): boolean {
  if (a.questions.length !== b.questions.length) return false;
  return a.questions.every((q, i) => {
    const r = b.questions[i]!;
    return normalizeName(q.name) === normalizeName(r.name) && q.type === r.type && q.class === r.class;
  });
}

/** How long a UDP socket may be reused before a fresh one (new source port) replaces it. */
const SOCKET_MAX_AGE_MS = 60_000;
/** Idle sockets kept per transport (concurrent reads each need their own). */
const MAX_IDLE_SOCKETS = 2;

interface PooledSocket {
  socket: dgram.Socket;
  createdAt: number;
  /** Set by the socket's permanent error handler: never reuse it. */
  broken: boolean;
}

export class DnsTransport {
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly idle: PooledSocket[] = [];
  private readonly signer: TsigSigner | undefined;
  /** Whether requests are signed (kept sockets need every reply to carry a MAC). */
  private readonly signed: boolean;
  constructor(private readonly opts: TransportOptions) {
    this.signer = opts.signer ?? (opts.key ? hmacSigner(opts.key) : undefined);
    this.signed = this.signer !== undefined || opts.session !== undefined;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? systemRandom;
  }

  /** A bound UDP socket: an idle one if still young, else a new one. */
  private takeSocket(): PooledSocket | Promise<PooledSocket> {
    for (let s = this.idle.pop(); s; s = this.idle.pop()) {
      if (!s.broken && this.clock.monotonicMs() - s.createdAt < SOCKET_MAX_AGE_MS) {
        s.socket.ref();
        return s;
      }
      s.socket.close();
    }
    const socket = dgram.createSocket(net.isIPv6(this.opts.server.host) ? 'udp6' : 'udp4');
    const pooled: PooledSocket = { socket, createdAt: this.clock.monotonicMs(), broken: false };
    // Permanent: an 'error' without a listener would throw; a broken socket is never reused.
    socket.on('error', () => {
      pooled.broken = true;
    });
    return new Promise((resolve) => socket.bind(0, () => resolve(pooled)));
  }

  /** Keeps a socket that served a clean exchange for the next one, or closes it. */
  private releaseSocket(s: PooledSocket, clean: boolean): void {
    s.socket.removeAllListeners('message');
    const keep =
      clean && this.signed && !s.broken && this.idle.length < MAX_IDLE_SOCKETS && this.clock.monotonicMs() - s.createdAt < SOCKET_MAX_AGE_MS;
    if (!keep) {
      s.socket.close();
      return;
    }
    // An idle socket must not keep the process alive (failoverctl exits when done).
    s.socket.unref();
    this.idle.push(s);
  }

  private sign(request: Message, signer: TsigSigner | undefined): { wire: Buffer; attempt: Attempt } {
    const id = this.random.below(0x10000);
    const msg = { ...request, id };
    const sentAt = this.clock.monotonicMs();
    if (!signer) return { wire: encodeMessage(msg), attempt: { id, mac: Buffer.alloc(0), sentAt } };
    const signed = signer.sign(msg, this.clock.wallMs() / 1000);
    return { wire: signed.wire, attempt: { id, mac: signed.mac, sentAt } };
  }

  private judge(buf: Buffer, request: Message, attempts: Attempt[], signer: TsigSigner | undefined): Judgement {
    let decoded: Decoded;
    try {
      decoded = decodeMessage(buf);
    } catch (err) {
      return { kind: 'drop', why: (err as Error).message };
    }
    const m = decoded.message;
    const attempt = attempts.find((a) => a.id === m.id);
    if (!attempt) return { kind: 'drop', why: `unknown id ${m.id}` };
    if (!m.flags.qr || m.opcode !== request.opcode) return { kind: 'drop', why: 'not a response to our opcode' };
    // Error replies (FORMERR, BADKEY...) may omit the question; others must echo it.
    if (!(m.questions.length === 0 && m.rcode !== RCODE.NOERROR) && !sameQuestion(m, request)) {
      return { kind: 'drop', why: 'question does not match' };
    }
    if (m.flags.tc) return { kind: 'truncated' };
    if (!signer) return { kind: 'accept', exchange: { response: m, authenticated: false, tsigError: 0 } };
    // An error answered with our own signature copied back proves nothing (anyone who saw the
    // request can make it), but it is the server's last word on this attempt: waiting for a signed
    // one would only burn the retry budget, and a blind resend could apply a change twice. The
    // exchange ends at once, unauthenticated; the caller decides on a signed read.
    if (m.rcode !== RCODE.NOERROR && echoesRequestMac(decoded, attempt.mac)) return { kind: 'echo', message: m };
    const v: TsigVerdict = signer.verify(buf, decoded, attempt.mac, this.clock.wallMs() / 1000);
    switch (v.kind) {
      case 'ok':
        return {
          kind: 'accept',
          exchange: {
            response: m,
            authenticated: true,
            offsetSeconds: v.offsetSeconds,
            serverTime: v.serverTime,
            tsigError: v.tsig.error,
          },
        };
      case 'unsigned-error':
        return { kind: 'unsigned-error', message: m, error: v.error };
      case 'unsigned':
        return { kind: 'drop', why: `unsigned ${rcodeName(m.rcode)} reply to a signed request` };
      case 'bad':
        return { kind: 'drop', why: `TSIG does not verify (${v.why})` };
    }
  }

  /**
   * Sends `request` (its ID is replaced per attempt) and resolves with the
   * first acceptable response. Rejects with DnsError:
   * DNS_TIMEOUT, DNS_UNREACHABLE, DNS_TSIG_BADSIG/BADKEY (unauthenticated), DNS_TSIG_UNSIGNED,
   * DNS_UNSIGNED_ERROR (an error rcode with our own signature copied back: at once, not retried).
   */
  async exchange(request: Message): Promise<Exchange> {
    const session = this.opts.session;
    if (!session) return this.exchangeWith(request, this.signer);
    const signer = await session.acquire();
    try {
      return await this.exchangeWith(request, signer);
    } catch (err) {
      // Unsigned BADKEY/BADSIG: the server does not know (any more) the context we signed with.
      if (!(err instanceof DnsError) || err.authenticated || (err.code !== 'DNS_TSIG_BADKEY' && err.code !== 'DNS_TSIG_BADSIG')) throw err;
      session.invalidate(signer);
      return this.exchangeWith(request, await session.acquire());
    }
  }

  private async exchangeWith(request: Message, signer: TsigSigner | undefined): Promise<Exchange> {
    const started = this.clock.monotonicMs();
    const budget = this.opts.timeoutMs * (this.opts.retries + 1);
    const deadline = started + budget;
    const state = { attempts: 0, lastDropped: undefined as string | undefined };
    let useTcp = this.opts.tcp ?? false;
    let result: Omit<Exchange, 'transport' | 'attempts' | 'rttMs'> | 'truncated' | undefined;
    if (!useTcp) {
      result = await this.udp(request, signer, deadline, state);
      if (result === 'truncated') useTcp = true;
    }
    if (useTcp) result = await this.tcpLoop(request, signer, deadline, state);
    if (!result || result === 'truncated') throw this.timeoutError(budget, state.lastDropped, signer);
    return { ...result, transport: useTcp ? 'tcp' : 'udp', attempts: state.attempts, rttMs: this.clock.monotonicMs() - started };
  }

  private timeoutError(budget: number, lastDropped: string | undefined, signer: TsigSigner | undefined): DnsError {
    const s = this.opts.server;
    if (lastDropped?.startsWith('unsigned')) {
      return new DnsError(
        'DNS_TSIG_UNSIGNED',
        `${s.host}:${s.port} answered only without a valid TSIG signature (${lastDropped}); not trusted. ` +
          `The server did not accept our signed request (some, e.g. PowerDNS, say so with an unsigned NOTAUTH or REFUSED): ${this.keyChecks(signer)}`,
      );
    }
    return new DnsError(
      'DNS_TIMEOUT',
      `no answer from ${s.host}:${s.port} within ${budget} ms (${this.opts.retries + 1} attempts)` +
        (lastDropped ? `; dropped: ${lastDropped}` : ''),
    );
  }

  private unsignedError(m: Message, error: number, signer: TsigSigner | undefined): DnsError {
    const name = rcodeName(error);
    const code = error === RCODE.BADKEY ? 'DNS_TSIG_BADKEY' : error === RCODE.BADSIG ? 'DNS_TSIG_BADSIG' : 'DNS_TSIG_UNSIGNED';
    const hint = error === RCODE.BADKEY ? 'the server does not know this key name/algorithm' : 'the key secret does not match the server';
    return new DnsError(code, `TSIG ${name} from ${this.opts.server.host}:${this.opts.server.port}: ${hint} (unsigned reply, not trusted): ${this.keyChecks(signer)}`, {
      rcode: rcodeName(m.rcode),
      authenticated: false,
    });
  }

  /** An error answered with our own request's signature copied back (Samba): unauthenticated, outcome unknown. */
  private echoError(m: Message, signer: TsigSigner | undefined): DnsError {
    const s = this.opts.server;
    const rcode = rcodeName(m.rcode);
    const as = signer?.principal !== undefined ? ` as ${signer.principal}` : '';
    return new DnsError(
      'DNS_UNSIGNED_ERROR',
      `${s.host}:${s.port} answered ${rcode} to our signed ${m.opcode}${as} without a signature of its own (it copied our request's back, as Samba's AD DNS does for every error): not trusted, so what the server did is unknown until a signed read`,
      { rcode, authenticated: false },
    );
  }

  /** What an operator checks when the server does not accept our key. */
  private keyChecks(signer: TsigSigner | undefined): string {
    const g = signer?.principal;
    if (g !== undefined) {
      return `GSS-TSIG context ${signer!.keyName} as ${g}: the server may have lost it (a restart), or its update policy does not grant ${g} the failover record and the lease`;
    }
    const k = this.opts.key;
    const key = k ? `"${k.name}" (${k.algorithm})` : '(none)';
    return `check that the key name ${key} and its secret in dns.key_file are exactly the server's, and that the zone's update policy grants this key the failover record and the lease`;
  }

  private async udp(
    request: Message,
    signer: TsigSigner | undefined,
    deadline: number,
    state: { attempts: number; lastDropped: string | undefined },
  ): Promise<Omit<Exchange, 'transport' | 'attempts' | 'rttMs'> | 'truncated' | undefined> {
    const { server, timeoutMs, retries } = this.opts;
    const taken = this.takeSocket();
    const pooled = taken instanceof Promise ? await taken : taken;
    const socket = pooled.socket;
    const attempts: Attempt[] = [];
    let dropped = false;
    return new Promise((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const onError = (err: Error): void => {
        state.lastDropped = `socket: ${err.message}`;
      };
      const finish = (fn: () => void, clean = false): void => {
        this.clock.cancel(timer);
        socket.off('error', onError);
        // Clean: answered on the first attempt with nothing dropped, so no late reply can follow.
        this.releaseSocket(pooled, clean && attempts.length === 1 && !dropped);
        fn();
      };
      const send = (): void => {
        const remaining = deadline - this.clock.monotonicMs();
        if (state.attempts > retries || remaining <= 0) return finish(() => resolve(undefined));
        const { wire, attempt } = this.sign(request, signer);
        attempts.push(attempt);
        state.attempts++;
        socket.send(wire, server.port, server.host, (err) => {
          // A local send error (no route) just burns this attempt.
          if (err) state.lastDropped = `send: ${err.message}`;
        });
        timer = this.clock.setTimer(send, Math.min(timeoutMs, remaining));
      };
      socket.on('error', onError);
      socket.on('message', (buf, rinfo) => {
        if (rinfo.address !== server.host || rinfo.port !== server.port) {
          dropped = true;
          this.opts.onDropped?.(`reply from ${rinfo.address}:${rinfo.port}`);
          return;
        }
        const j = this.judge(buf, request, attempts, signer);
        switch (j.kind) {
          case 'drop':
            dropped = true;
            state.lastDropped = j.why;
            this.opts.onDropped?.(j.why);
            return;
          case 'truncated':
            return finish(() => resolve('truncated'));
          case 'unsigned-error':
            return finish(() => reject(this.unsignedError(j.message, j.error, signer)));
          case 'echo':
            return finish(() => reject(this.echoError(j.message, signer)));
          case 'accept':
            return finish(() => resolve(j.exchange), true);
        }
      });
      send();
    });
  }

  private async tcpLoop(
    request: Message,
    signer: TsigSigner | undefined,
    deadline: number,
    state: { attempts: number; lastDropped: string | undefined },
  ): Promise<Omit<Exchange, 'transport' | 'attempts' | 'rttMs'> | undefined> {
    let lastErr: Error | undefined;
    // A switch from UDP after truncation gets at least one TCP attempt.
    const maxAttempts = Math.max(this.opts.retries + 1, state.attempts + 1);
    while (state.attempts < maxAttempts && this.clock.monotonicMs() < deadline) {
      state.attempts++;
      const timeout = Math.min(this.opts.timeoutMs, Math.max(1, deadline - this.clock.monotonicMs()));
      try {
        const r = await this.tcpOnce(request, signer, timeout, state);
        if (r) return r;
      } catch (err) {
        if (err instanceof DnsError) throw err;
        lastErr = err as Error;
        state.lastDropped = `tcp: ${lastErr.message}`;
        // Connection refused answers at once: wait out the attempt's slot so
        // retries stay spread over the budget instead of spinning.
        await sleep(this.clock, Math.max(0, Math.min(timeout, deadline - this.clock.monotonicMs())));
      }
    }
    if (lastErr && /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/.test(lastErr.message)) {
      const s = this.opts.server;
      throw new DnsError('DNS_UNREACHABLE', `cannot connect to ${s.host}:${s.port} over TCP: ${lastErr.message}`, {}, { cause: lastErr });
    }
    return undefined;
  }

  private tcpOnce(
    request: Message,
    signer: TsigSigner | undefined,
    timeoutMs: number,
    state: { lastDropped: string | undefined },
  ): Promise<Omit<Exchange, 'transport' | 'attempts' | 'rttMs'> | undefined> {
    const { server } = this.opts;
    const { wire, attempt } = this.sign(request, signer);
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: server.host, port: server.port });
      let buffered = Buffer.alloc(0);
      const timer = this.clock.setTimer(() => done(() => resolve(undefined)), timeoutMs);
      const done = (fn: () => void): void => {
        this.clock.cancel(timer);
        sock.removeAllListeners('data');
        sock.on('error', () => {});
        sock.destroy();
        fn();
      };
      sock.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(wire.length, 0);
        sock.write(Buffer.concat([len, wire]));
      });
      sock.on('error', (err) => done(() => reject(err)));
      sock.on('close', () => done(() => resolve(undefined)));
      sock.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        // A connection carries only our request, so messages arrive in order.
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const n = buffered.readUInt16BE(0);
          const msg = buffered.subarray(2, 2 + n);
          buffered = buffered.subarray(2 + n);
          const j = this.judge(msg, request, [attempt], signer);
          if (j.kind === 'accept') return done(() => resolve(j.exchange));
          if (j.kind === 'unsigned-error') return done(() => reject(this.unsignedError(j.message, j.error, signer)));
          if (j.kind === 'echo') return done(() => reject(this.echoError(j.message, signer)));
          state.lastDropped = j.kind === 'drop' ? j.why : 'truncated reply over TCP';
          this.opts.onDropped?.(state.lastDropped);
        }
      });
    });
  }
}
