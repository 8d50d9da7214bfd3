/**
 * The propagation check's runner: after each write of the record (the engine says `written`), on a
 * value read that differs from the one being verified (`seen`: a change made elsewhere), and every
 * dns.verify_interval otherwise, it asks every authoritative server what it serves, through its
 * AuthorityPort, until each serves the value. Time only through its Clock. Informational only: the
 * engine hands it values and reads its status; nothing flows back into a decision.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { PropagationStatus } from '../control/protocol.js';
import type { Logger } from '../log/logger.js';
import type { AuthorityPort } from './authority.js';
import { allInSync, answered, lateNow, nextDelay, sameValue, startRound, toStatus, withServers, type Answer, type PropagationState } from './policy.js';

/** Between passes while a server may still catch up: the lag's resolution. */
export const FAST_POLL_MS = 250;

export interface VerifierOptions {
  port: AuthorityPort;
  clock: Clock;
  logger: Logger;
  record: string;
  sites: { primary: string; dr: string };
  recordTtlMs: number;
  verifyIntervalMs: number;
  propagationTimeoutMs: number;
  /** A late server, for the webhook (the same path as the engine's notifications). */
  notify?: (event: string, text: string) => void;
}

/** What the engine sees of the check. */
export interface PropagationPort {
  written(values: string[], op: string, atMono: number): void;
  seen(values: string[]): void;
  status(): PropagationStatus | null;
}

/** Nothing left to wait for: each server serves the value or is late. */
const isSettled = (s: PropagationState): boolean => s.servers.every((x) => x.inSync || x.late);
/** The same, not waiting for a server whose last answer was an error (it may never answer). */
const isSettledAnswering = (s: PropagationState): boolean => s.servers.every((x) => x.inSync || x.late || x.error !== null);

export class PropagationVerifier implements PropagationPort {
  private state: PropagationState | null = null;
  /** Rises with every new target: a pass that started for an older one throws its answers away. */
  private round = 0;
  private timer: TimerHandle | undefined;
  private inFlight: Promise<void> | null = null;
  private again = false;
  private running = false;
  private settledWaiters: { done: (s: PropagationState) => boolean; resolve: () => void }[] = [];
  /** The last round a pass completed for (before it, an empty server list means "not asked yet"). */
  private passedRound = -1;

  constructor(private readonly o: VerifierOptions) {}

  start(): void {
    this.running = true;
    if (this.state) this.kick();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.o.clock.cancel(this.timer);
    await this.inFlight?.catch(() => undefined);
  }

  written(values: string[], op: string, atMono: number): void {
    const c = this.o.clock;
    this.target({ values, op, atMono, atWall: c.wallMs() - (c.monotonicMs() - atMono) });
  }

  seen(values: string[]): void {
    const t = this.state?.target;
    if (t && sameValue(t.values, values)) return;
    this.target({ values, op: 'read', atMono: this.o.clock.monotonicMs(), atWall: this.o.clock.wallMs() });
  }

  status(): PropagationStatus | null {
    return this.state && toStatus(this.state, this.o.record, this.o.sites, this.o.recordTtlMs, this.o.clock.monotonicMs());
  }

  /**
   * Resolves once every server serves the value or is late. `answeringOnly` (failoverctl init)
   * does not wait for a server whose last answer was an error: one that is down or refuses would
   * hold the command for all of dns.propagation_timeout, and the agents go on asking it anyway.
   */
  settled(opts: { answeringOnly?: boolean } = {}): Promise<void> {
    const done = opts.answeringOnly ? isSettledAnswering : isSettled;
    if (this.state && this.passedRound === this.round && done(this.state)) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push({ done, resolve }));
  }

  /** One pass now, after any in flight (failoverctl dns, tests). */
  async passNow(): Promise<void> {
    await this.inFlight?.catch(() => undefined);
    await this.pass();
  }

  private target(t: PropagationState['target']): void {
    this.state = startRound(this.state, t);
    this.round++;
    this.kick();
  }

  private kick(): void {
    if (!this.running) return;
    this.o.clock.cancel(this.timer);
    this.timer = undefined;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.pass()
      .catch((err: Error) => this.o.logger.error(`propagation check failed: ${err.message}`, { event: 'propagation_error' }))
      .finally(() => {
        this.inFlight = null;
        if (this.again) {
          this.again = false;
          this.kick();
        } else this.schedule();
      });
  }

  private schedule(): void {
    if (!this.running || !this.state) return;
    const delay = nextDelay(this.state, this.o.clock.monotonicMs(), this.o.propagationTimeoutMs, FAST_POLL_MS, this.o.verifyIntervalMs);
    this.timer = this.o.clock.setTimer(() => this.kick(), delay);
  }

  private async pass(): Promise<void> {
    if (!this.state) return;
    const round = this.round;
    const c = this.o.clock;
    let list;
    let listError: string | null = null;
    try {
      list = await this.o.port.servers();
    } catch (err) {
      listError = `cannot list the authoritative servers: ${(err as Error).message}`;
    }
    const answers = await Promise.all(
      (list?.servers ?? []).map(async (s): Promise<[string, Answer, number, number]> => {
        let a: Answer;
        try {
          a = { ok: true, ...(await this.o.port.ask(s)) };
        } catch (err) {
          const code = (err as { code?: string }).code;
          a = { ok: false, error: `${code ? `${code}: ` : ''}${(err as Error).message}` };
        }
        return [s.server, a, c.monotonicMs(), c.wallMs()];
      }),
    );
    if (round !== this.round || !this.state) return; // a newer value came meanwhile: its own pass follows
    const wasDone = allInSync(this.state);
    const wasLate = new Set(this.state.servers.filter((s) => s.late).map((s) => s.server));
    // A failed list keeps the servers known from before (asked again next pass).
    let st = list ? withServers(this.state, [...list.servers, ...list.unresolved]) : { ...this.state, listError };
    for (const [server, a, atMono, atWall] of answers) st = answered(st, server, a, atMono, atWall);
    for (const u of list?.unresolved ?? []) st = answered(st, u.server, { ok: false, error: u.error }, c.monotonicMs(), c.wallMs());
    const { state, late } = lateNow(st, c.monotonicMs(), this.o.propagationTimeoutMs);
    this.state = state;
    this.passedRound = round;
    const words = (): string => this.status()!.summary;
    for (const s of late) {
      const text = `${s.server}${s.name ? ` (${s.name})` : ''} does not serve ${this.o.record} = ${state.target.values.join(', ') || '(none)'} after ${this.o.propagationTimeoutMs / 1000} s: ${s.error ?? `it serves ${s.value?.join(', ') || 'nothing'}${s.serial !== null ? ` (serial ${s.serial})` : ''}`}`;
      this.o.logger.warning(text, { event: 'propagation_late', server: s.server, op: state.target.op });
      this.o.notify?.('propagation_late', text);
    }
    for (const s of state.servers.filter((x) => x.inSync && wasLate.has(x.server))) {
      this.o.logger.notice(`${s.server} serves ${this.o.record} = ${state.target.values.join(', ')} again (caught up)`, { event: 'propagation_caught_up', server: s.server });
    }
    this.settledWaiters = this.settledWaiters.filter((w) => (w.done(state) ? (w.resolve(), false) : true));
    if (!wasDone && allInSync(state)) this.o.logger.notice(words(), { event: 'propagation_done', op: state.target.op, servers: state.servers.length });
  }
}
