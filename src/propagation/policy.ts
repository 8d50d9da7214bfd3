/**
 * Propagation of the failover record to every authoritative server, as pure functions: whether a
 * server serves the value written, since when, whether it is late, and the words for it. The
 * runner (./verifier.ts) asks the servers and feeds the answers in. Nothing here is an input to a
 * decision: core/ never imports it (secondaries do not sign with our key).
 */
import type { PropagationStatus, ServerSync } from '../control/protocol.js';
import type { Role } from '../lease/lease.js';

/** What every server should serve, and from when (the write's send, or the read that saw it). */
export interface Target {
  values: string[];
  /** takeover / failback / switchover / init, or "read": a change this agent did not make. */
  op: string;
  atMono: number;
  atWall: number;
}

export interface ServerId {
  /** "address:port" ("[v6]:port"), or "name:port" for a name that did not resolve. */
  server: string;
  name: string | null;
}

export type Answer = { ok: true; serial: number; values: string[] } | { ok: false; error: string };

export interface ServerState extends ServerId {
  serial: number | null;
  value: string[] | null;
  inSync: boolean;
  lagMs: number | null;
  sinceWall: number | null;
  /** Monotonic ms since which it has not served the target (the write, or when it dropped out); null while in sync. */
  outSince: number | null;
  late: boolean;
  error: string | null;
}

export interface PropagationState {
  target: Target;
  servers: ServerState[];
  /** Servers found late since start (a counter: survives new targets). */
  lateTotal: number;
  /** Why the server list could not be had this time; null normally. */
  listError: string | null;
}

/** The same RRset: order does not matter (servers may rotate it), case does not for IPv6. */
export function sameValue(a: readonly string[], b: readonly string[]): boolean {
  const norm = (v: readonly string[]): string => [...v].map((x) => x.toLowerCase()).sort().join(' ');
  return a.length === b.length && norm(a) === norm(b);
}

function fresh(id: ServerId, target: Target, prev?: ServerState): ServerState {
  return {
    server: id.server,
    name: id.name,
    // What it last served stays visible until it answers again; it counts only once it serves the target.
    serial: prev?.serial ?? null,
    value: prev?.value ?? null,
    inSync: false,
    lagMs: null,
    sinceWall: null,
    outSince: target.atMono,
    late: false,
    error: prev?.error ?? null,
  };
}

/** A new value to verify: every server starts out of sync from the target's time. */
export function startRound(prev: PropagationState | null, target: Target): PropagationState {
  return {
    target: { ...target, values: [...target.values] },
    servers: (prev?.servers ?? []).map((s) => fresh(s, target, s)),
    lateTotal: prev?.lateTotal ?? 0,
    listError: prev?.listError ?? null,
  };
}

/** The servers to ask now (the NS set may change): known ones keep their state, new ones start out of sync. */
export function withServers(state: PropagationState, ids: readonly ServerId[], listError: string | null = null): PropagationState {
  const known = new Map(state.servers.map((s) => [s.server, s]));
  return {
    ...state,
    servers: ids.map((id) => {
      const s = known.get(id.server);
      return s ? { ...s, name: id.name } : fresh(id, state.target);
    }),
    listError,
  };
}

/** One server's answer (or failure) at `atMono` / `atWall`. */
export function answered(state: PropagationState, server: string, answer: Answer, atMono: number, atWall: number): PropagationState {
  return {
    ...state,
    servers: state.servers.map((s) => {
      if (s.server !== server) return s;
      const next: ServerState = { ...s };
      if (answer.ok) {
        next.serial = answer.serial;
        next.value = [...answer.values];
      }
      // Judged on the value alone: a server with an older serial that serves the right address
      // serves clients what they should get (a later renewal moved the serial, not the record).
      next.inSync = answer.ok && sameValue(answer.values, state.target.values);
      next.error = answer.ok ? null : answer.error;
      if (next.inSync) {
        if (next.lagMs === null) {
          next.lagMs = Math.max(0, atMono - state.target.atMono);
          next.sinceWall = atWall;
        }
        next.outSince = null;
        next.late = false;
      } else {
        next.outSince ??= atMono;
      }
      return next;
    }),
  };
}

/** Servers out of sync for `timeoutMs` or more that were not late yet: each is reported once per episode. */
export function lateNow(state: PropagationState, nowMono: number, timeoutMs: number): { state: PropagationState; late: ServerState[] } {
  const late: ServerState[] = [];
  const servers = state.servers.map((s) => {
    if (s.inSync || s.late || s.outSince === null || nowMono - s.outSince < timeoutMs) return s;
    const l = { ...s, late: true };
    late.push(l);
    return l;
  });
  return { state: { ...state, servers, lateTotal: state.lateTotal + late.length }, late };
}

export function allInSync(state: PropagationState): boolean {
  return state.servers.length > 0 && state.servers.every((s) => s.inSync);
}

/**
 * How long until the next pass: `fastMs` while a server still has time to catch up (the lag's
 * resolution), else `slowMs` (dns.verify_interval); a late server is still asked then.
 */
export function nextDelay(state: PropagationState, nowMono: number, timeoutMs: number, fastMs: number, slowMs: number): number {
  const waiting = state.servers.some((s) => !s.inSync && s.outSince !== null && nowMono - s.outSince < timeoutMs);
  return waiting ? fastMs : slowMs;
}

/** "12:00:04.2" (UTC, tenths). */
export function clockTime(wallMs: number, tenths = true): string {
  const iso = new Date(wallMs).toISOString();
  return tenths ? iso.slice(11, 21) : iso.slice(11, 19);
}

function whose(values: readonly string[], site: Role | null): string {
  if (site === 'dr') return "the DR's address";
  if (site === 'primary') return "the primary's address";
  return values.length ? `the address ${values.join(', ')}` : 'no address';
}

export function siteOfValue(values: readonly string[], sites: { primary: string; dr: string }): Role | null {
  if (values.length !== 1) return null;
  return values[0] === sites.primary ? 'primary' : values[0] === sites.dr ? 'dr' : null;
}

/** When the last server caught up (wall ms), and clients follow one record TTL later; null while one has not. */
function settled(state: PropagationState, ttlMs: number): { at: number; clients: number; propagationMs: number } | null {
  if (!allInSync(state)) return null;
  const at = Math.max(...state.servers.map((s) => s.sinceWall ?? 0));
  // "by": rounded UP to the second, a cache may hold the old value until then.
  return { at, clients: Math.ceil((at + ttlMs) / 1000) * 1000, propagationMs: Math.max(...state.servers.map((s) => s.lagMs ?? 0)) };
}

/** The state in words: "the DR's address is served by 3/3 servers since 12:00:04.2; clients follow by 12:00:34 UTC (record TTL 30 s)". */
export function describe(state: PropagationState, site: Role | null, ttlMs: number, nowMono: number): string {
  const who = whose(state.target.values, site);
  const n = state.servers.length;
  if (n === 0) return `${who}: no authoritative server to ask${state.listError ? ` (${state.listError})` : ''}`;
  const done = settled(state, ttlMs);
  const ttl = `record TTL ${ttlMs / 1000} s`;
  if (done) return `${who} is served by ${n}/${n} servers since ${clockTime(done.at)}; clients follow by ${clockTime(done.clients, false)} UTC (${ttl})`;
  const inSync = state.servers.filter((s) => s.inSync).length;
  const behind = state.servers
    .filter((s) => !s.inSync)
    .map((s) => {
      const out = s.outSince === null ? '' : `${((nowMono - s.outSince) / 1000).toFixed(1)} s`;
      const why = s.error ?? (s.value ? `serves ${s.value.join(', ') || 'nothing'}` : 'no answer yet');
      return `${s.server} not yet (${[out, s.late ? 'LATE' : '', why].filter(Boolean).join(', ')})`;
    });
  return `${who} is served by ${inSync}/${n} servers; ${behind.join('; ')}`;
}

/** The status object failoverctl, /metrics and the control socket carry. */
export function toStatus(state: PropagationState, record: string, sites: { primary: string; dr: string }, ttlMs: number, nowMono: number): PropagationStatus {
  const site = siteOfValue(state.target.values, sites);
  const done = settled(state, ttlMs);
  const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
  const servers: ServerSync[] = state.servers.map((s) => ({
    server: s.server,
    name: s.name,
    serial: s.serial,
    value: s.value,
    in_sync: s.inSync,
    lag_ms: s.lagMs,
    since: iso(s.sinceWall),
    late: s.late,
    error: s.error,
  }));
  return {
    record,
    value: [...state.target.values],
    site,
    op: state.target.op,
    written_at: new Date(state.target.atWall).toISOString(),
    servers,
    in_sync: servers.filter((s) => s.in_sync).length,
    total: servers.length,
    all_in_sync_at: iso(done?.at ?? null),
    clients_follow_by: iso(done?.clients ?? null),
    propagation_seconds: done ? done.propagationMs / 1000 : null,
    late_total: state.lateTotal,
    summary: describe(state, site, ttlMs, nowMono),
    error: state.listError,
  };
}
