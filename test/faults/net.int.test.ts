/**
 * The fault suite's networks (test/faults/net.ts) and its userspace delayer, checked with real
 * namespaces, nftables, iptables NFQUEUE and ping before any fault case relies on them:
 * - the world has only 198.18.0.0/15 addresses, no IPv6, routes nowhere else;
 * - ping RTT and loss through the delayer match the settings (checkDelayer, the same check the
 *   fault suite runs first and reports);
 * - drop cuts exactly one direction of one link, undrop restores it;
 * - an impairment changes at runtime without a restart, and the delayer counts what it did;
 * - destroy() leaves no namespace and no process (by PID), also for a crashed run's leftovers.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive } from '../fixtures/nspawn.js';
import { NODES, checkDelayer, createWorld, ping, removeWorld, type World } from './net.js';

const netns = () => (fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : []);

describe('fault world networks and the NFQUEUE delayer', () => {
  let world: World;
  const spare: World[] = [];

  beforeAll(async () => {
    world = await createWorld();
  });

  afterAll(async () => {
    for (const w of [world, ...spare]) await w?.destroy();
  });

  it('has only 198.18.0.0/15 addresses, no IPv6, and routes between the leaves only', async () => {
    for (const where of ['wan', ...NODES] as const) {
      const r = await world.exec(where, ['ip', '-o', 'addr', 'show']);
      const addrs = [...r.stdout.matchAll(/ inet6? (\S+)/g)].map((m) => m[1]);
      expect(addrs.filter((a) => a !== '127.0.0.1/8' && !/^198\.1[89]\./.test(a)), where).toEqual([]);
    }
    const routes = (await world.exec('wan', ['ip', '-4', 'route', 'show'])).stdout.trim().split('\n');
    expect(routes.map((l) => l.split(' ')[0]).sort()).toEqual(['198.18.1.0/24', '198.18.2.0/24', '198.18.3.0/24', '198.18.4.0/24']);
    const p = await ping(world, 'devices', 'site2', 3, 0.02);
    expect(p.received).toBe(3);
  });

  it('delays, jitters and loses packets as set (checkDelayer)', async () => {
    const check = await checkDelayer(world);
    for (const s of check.stages) {
      console.log(
        `delayer ${s.name} ${JSON.stringify(s.each)}: median RTT ${s.ping.medianMs?.toFixed(1)} ms, min ` +
          `${s.ping.minMs?.toFixed(1)}, sd ${s.ping.stdevMs?.toFixed(1)}, loss ${s.ping.lossPct.toFixed(1)} % of ${s.ping.sent}`,
      );
    }
    expect(check.failures).toEqual([]);
    expect(check.ok).toBe(true);
    const loss = check.stages.find((s) => s.name === 'loss');
    // each delayer saw its packets and dropped about its share
    for (const s of Object.values(loss?.stats ?? {})) {
      expect(s.packets).toBe(s.accepted + s.dropped + s.flushed);
      expect(s.dropped / s.packets).toBeGreaterThan(0.1);
      expect(s.dropped / s.packets).toBeLessThan(0.3);
    }
    expect(Object.keys(loss?.stats ?? {}).sort()).toEqual(['site1>witness', 'witness>site1']);
    expect(world.faults()).toEqual({ dropped: [], impaired: [] });
  });

  it('drop cuts one direction of one link only; undrop restores it', async () => {
    await world.drop('site1', 'witness');
    try {
      expect((await ping(world, 'site1', 'witness', 10, 0.02)).lossPct).toBe(100);
      expect((await ping(world, 'site2', 'witness', 10, 0.02)).lossPct).toBe(0);
      expect((await ping(world, 'site1', 'site2', 10, 0.02)).lossPct).toBe(0);
      // the reverse direction still passes: witness -> site1 requests arrive, only the replies are cut
      const rx = async () => {
        const r = await world.exec('site1', ['ip', '-j', '-s', 'link', 'show', 'wan0']);
        return (JSON.parse(r.stdout) as Array<{ stats64: { rx: { packets: number } } }>)[0].stats64.rx.packets;
      };
      const rxBefore = await rx();
      expect((await ping(world, 'witness', 'site1', 10, 0.02)).lossPct).toBe(100);
      expect((await rx()) - rxBefore).toBeGreaterThanOrEqual(10);
    } finally {
      await world.undrop('site1', 'witness');
    }
    expect((await ping(world, 'site1', 'witness', 10, 0.02)).lossPct).toBe(0);
    await world.isolate('site2');
    try {
      expect(world.faults().dropped).toHaveLength(6);
      expect((await ping(world, 'site1', 'site2', 5, 0.02)).lossPct).toBe(100);
      expect((await ping(world, 'devices', 'site2', 5, 0.02)).lossPct).toBe(100);
      expect((await ping(world, 'devices', 'site1', 5, 0.02)).lossPct).toBe(0);
    } finally {
      await world.heal();
    }
    expect((await ping(world, 'devices', 'site2', 5, 0.02)).lossPct).toBe(0);
  });

  it('changes an impairment at runtime, without restarting the delayer', async () => {
    await world.impair('site2', 'witness', { delayMs: 30 });
    const [before] = world.faults().impaired;
    const p1 = await ping(world, 'site2', 'witness', 10, 0.02);
    await world.impair('site2', 'witness', { delayMs: 120 });
    const p2 = await ping(world, 'site2', 'witness', 10, 0.02);
    expect(world.faults().impaired[0].pid).toBe(before.pid);
    const live = await world.delayerStats('site2', 'witness');
    const final = await world.unimpair('site2', 'witness');
    expect(p1.medianMs).toBeGreaterThanOrEqual(30);
    expect(p1.medianMs).toBeLessThan(80);
    expect(p2.medianMs).toBeGreaterThanOrEqual(120);
    expect(p2.medianMs).toBeLessThan(170);
    expect(live?.accepted).toBe(20);
    expect(final).toMatchObject({ packets: 20, accepted: 20, dropped: 0 });
    expect(alive(before.pid)).toBe(false);
    expect(await world.unimpair('site2', 'witness')).toBeNull();
  });

  it('destroy() leaves no namespace and no process behind, also after a crashed run', async () => {
    const w = await createWorld({ prefix: `fa${process.pid}x-` });
    spare.push(w);
    await w.impair('site1', 'site2', { delayMs: 10, lossPct: 5 });
    w.spawn('witness', ['sleep', '600'], { stdio: 'ignore' });
    const pids = w.pids();
    expect(pids).toHaveLength(2);
    expect(netns().filter((n) => n.startsWith(w.prefix))).toHaveLength(5);
    await w.destroy();
    await w.destroy();
    expect(netns().filter((n) => n.startsWith(w.prefix))).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);

    // a crashed run: its namespace still there with a process inside that nobody tracks
    const leftover = `fa${process.pid}y-wan`;
    await new Promise<void>((resolve, reject) => {
      const add = spawn('ip', ['netns', 'add', leftover], { stdio: 'ignore' });
      add.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ip netns add: ${code}`))));
    });
    // Inside the namespace before the cleanup looks (`ip netns exec` joins it, then execs the shell,
    // which says so and becomes the sleep, one PID throughout): asked too early, the cleanup found
    // no process in it, and the sleep ran on in a namespace nobody tracked (CI, 2026-12-08).
    const orphan = spawn('ip', ['netns', 'exec', leftover, 'sh', '-c', 'echo inside; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const orphanExit = new Promise((r) => orphan.once('exit', r));
    try {
      expect(orphan.pid).toBeGreaterThan(0);
      await new Promise<void>((resolve, reject) => {
        orphan.stdout!.once('data', () => resolve());
        orphan.once('exit', (code) => reject(new Error(`ip netns exec: exit ${code} before it was inside`)));
      });
      await removeWorld(`fa${process.pid}y-`);
      await orphanExit;
      expect(netns()).not.toContain(leftover);
    } finally {
      if (orphan.exitCode === null && orphan.signalCode === null) orphan.kill('SIGKILL');
      await removeWorld(`fa${process.pid}y-`);
    }
  });
});
