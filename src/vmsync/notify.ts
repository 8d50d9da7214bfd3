/**
 * Webhook notifications (SPEC §6 `notify.webhook`): Slack/Teams-compatible incoming-webhook JSON
 * `{"text": "..."}` POSTed with undici. The event name also travels in the
 * `X-Failover-Agent-Event` header (receivers that route on it may; Slack and Teams ignore it).
 *
 * `send()` never blocks and never throws: it puts the message in a bounded queue (when full, the
 * OLDEST waiting message is dropped and counted) that one background worker delivers in order,
 * each with a per-attempt timeout and bounded retries with backoff. A webhook that hangs or fails
 * therefore delays nothing but later notifications. `close()` waits a bounded time for the queue
 * to drain, then abandons what is left.
 */
import { Agent, request, type Dispatcher } from 'undici';

import { systemClock, type Clock, type TimerHandle } from '../clock.js';

import type { Logger } from '../log/logger.js';
import { redact } from './vm-client.js';

/** Events the agent sends (others are allowed: the name is free text). */
export type WebhookEvent = 'failover' | 'failback' | 'gap_found' | 'repair_done' | 'failback_ready' | 'repeated_errors' | (string & {});

export interface WebhookOptions {
  /** Per attempt, connect to the end of the answer. Default 5 s. */
  timeoutMs?: number;
  /** Extra attempts after a failed one (network error, timeout, 5xx, 429). Default 2. */
  retries?: number;
  logger: Logger;
  /** Most messages waiting; beyond it the oldest is dropped. Default 100. */
  maxQueue?: number;
  /** First backoff between attempts (doubles). Default 1 s. */
  backoffMs?: number;
  /** The HTTP port (an undici Dispatcher) instead of the sender's own pool; the caller's to close. */
  dispatcher?: Dispatcher;
  /** Backoff, per-attempt timeouts and close()'s wait; default the system clock. */
  clock?: Clock;
}

export interface WebhookStats {
  sent: number;
  failed: number;
  dropped: number;
  queued: number;
}

interface Item {
  event: string;
  text: string;
}

export class Webhook {
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly logger: Logger;
  private readonly maxQueue: number;
  private readonly backoffMs: number;
  private readonly dispatcher: Dispatcher;
  /** Our own pool (closed by close()), or null when the dispatcher was given. */
  private readonly ownPool: Agent | null;
  private readonly queue: Item[] = [];
  private worker: Promise<void> | null = null;
  private closed = false;
  private abort = new AbortController();
  private readonly counts = { sent: 0, failed: 0, dropped: 0 };
  private readonly clock: Clock;

  constructor(url: string, opts: WebhookOptions) {
    this.url = url;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.retries = opts.retries ?? 2;
    this.logger = opts.logger;
    this.maxQueue = Math.max(1, opts.maxQueue ?? 100);
    this.backoffMs = opts.backoffMs ?? 1_000;
    this.clock = opts.clock ?? systemClock;
    this.ownPool = opts.dispatcher ? null : new Agent({ connect: { timeout: this.timeoutMs }, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    this.dispatcher = opts.dispatcher ?? this.ownPool!;
  }

  /** Queue a notification; returns at once. False when closed (nothing queued). */
  send(event: WebhookEvent, text: string): boolean {
    if (this.closed) return false;
    if (this.queue.length >= this.maxQueue) {
      const old = this.queue.shift()!;
      this.counts.dropped++;
      this.logger.warning('webhook queue full, dropped the oldest notification', { event: old.event });
    }
    this.queue.push({ event, text });
    if (!this.worker) {
      this.worker = this.run().finally(() => {
        this.worker = null;
      });
    }
    return true;
  }

  stats(): WebhookStats {
    return { ...this.counts, queued: this.queue.length };
  }

  /**
   * Stop taking messages; wait up to `timeoutMs` (default 5 s) for the queue to drain, then abort
   * the attempt in flight and drop the rest.
   */
  async close(timeoutMs = 5_000): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (worker) {
      let timer: TimerHandle | undefined;
      const timedOut = await Promise.race([
        worker.then(() => false),
        new Promise<boolean>((r) => {
          timer = this.clock.setTimer(() => r(true), timeoutMs);
        }),
      ]);
      this.clock.cancel(timer);
      if (timedOut) {
        this.counts.dropped += this.queue.length;
        if (this.queue.length > 0) this.logger.warning('webhook closed with notifications undelivered', { dropped: this.queue.length });
        this.queue.length = 0;
        this.abort.abort();
        await worker.catch(() => {});
      }
    }
    await this.ownPool?.destroy().catch(() => {});
  }

  private async run(): Promise<void> {
    for (let item = this.queue.shift(); item; item = this.queue.shift()) {
      await this.deliver(item);
    }
  }

  private async deliver(item: Item): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.abort.signal.aborted) return;
      const why = await this.attempt(item);
      if (why === null) {
        this.counts.sent++;
        this.logger.debug('webhook delivered', { event: item.event });
        return;
      }
      if (why.final || attempt >= this.retries) {
        this.counts.failed++;
        this.logger.warning('webhook notification failed', { event: item.event, url: redact(this.url), error: why.message, attempts: attempt + 1 });
        return;
      }
      await this.sleep(this.backoffMs * 2 ** attempt);
    }
  }

  /** null on success, else why (final: a 4xx that another attempt will not fix). */
  private async attempt(item: Item): Promise<{ message: string; final: boolean } | null> {
    const { signal, done } = attemptSignal(this.abort.signal, this.timeoutMs, this.clock);
    try {
      const res = await request(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-failover-agent-event': item.event },
        body: JSON.stringify({ text: item.text }),
        dispatcher: this.dispatcher,
        signal,
      });
      await res.body.dump().catch(() => {});
      if (res.statusCode >= 200 && res.statusCode <= 299) return null;
      const final = res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429;
      return { message: `HTTP ${res.statusCode}`, final };
    } catch (err) {
      return { message: err instanceof Error ? err.message : String(err), final: false };
    } finally {
      done();
    }
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.abort.signal;
    return new Promise((resolve) => {
      const done = (): void => {
        this.clock.cancel(t);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = this.clock.setTimer(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * One attempt's signal: aborts on close() or after `ms`, whichever comes first. Hand-made instead
 * of AbortSignal.any, which Node 18 lacks (there the attempt had no timeout at all); `done()`
 * drops the timer and the listener on the long-lived close() signal.
 */
function attemptSignal(outer: AbortSignal, ms: number, clock: Clock): { signal: AbortSignal; done(): void } {
  const c = new AbortController();
  const onAbort = (): void => c.abort(outer.reason);
  const timer = clock.setTimer(() => c.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true });
  return {
    signal: c.signal,
    done: () => {
      clock.cancel(timer);
      outer.removeEventListener('abort', onAbort);
    },
  };
}
