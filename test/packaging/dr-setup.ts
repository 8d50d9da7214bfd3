/**
 * What the package tests share about the DR instance they run in a container: the witness (BIND on
 * the host's loopback, the record naming the primary), the shipped default intervals, and start ->
 * READY as the manager sees it.
 */
import type { Witness } from '../../src/lease/witness.js';
import { witnessOf } from '../agent/harness.js';
import { freePort, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';

/** The sites' addresses (the primary never runs: the DR takes over once its lease runs out). */
export const SITES = { primary: '127.0.0.45', dr: '127.0.0.46' };

/** BIND with the witness initialised (the record names the primary, epoch 1) and a free HTTP port. */
export async function startWitness(): Promise<{ srv: DnsServerFixture; witness: Witness; httpPort: number }> {
  const srv = await startServer('bind');
  const witness = witnessOf(srv);
  await witness.init(await witness.read(), SITES, Date.now() / 1000, false);
  return { srv, witness, httpPort: await freePort() };
}

/**
 * The shipped defaults (lease ttl 30s, renew every 10s, max_skew 5s, health every 10s, collector
 * every 5s) instead of the fast ones of test/fixtures/agent-in-container.ts's agentConfig.
 */
export function withDefaultIntervals(fast: string): string {
  const defaults = fast
    .replace(/^ttl = .*$/m, 'ttl = "30s"')
    .replace(/^renew_interval = .*$/m, 'renew_interval = "10s"')
    .replace(/^max_skew = .*$/m, 'max_skew = "5s"')
    .replace(/^interval = "1s"$/m, 'interval = "10s"')
    .replace(/^interval = "2s"$/m, 'interval = "5s"');
  if (defaults === fast) throw new Error('withDefaultIntervals: nothing replaced (agentConfig changed?)');
  return defaults;
}

/**
 * start -> READY as the manager saw it, `n` restarts in a row: from the exec of the main process to
 * the unit becoming active (Type=notify: when READY=1 was processed). `run` runs a shell command
 * in the container and resolves to its stdout (rejecting when it fails).
 */
export async function startToReadyMs(run: (cmd: string) => Promise<string>, unit: string, n: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    // (reset-failed: these restarts in a row would otherwise hit the unit's start limit)
    await run(`systemctl reset-failed ${unit}; systemctl restart ${unit}`);
    const t = await run(`systemctl show -p ExecMainStartTimestampMonotonic -p ActiveEnterTimestampMonotonic ${unit}`);
    const us = (k: string) => Number(new RegExp(`^${k}=(\\d+)$`, 'm').exec(t)![1]);
    ms.push(Math.round((us('ActiveEnterTimestampMonotonic') - us('ExecMainStartTimestampMonotonic')) / 1000));
  }
  return ms;
}
