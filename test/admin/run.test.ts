import { describe, expect, it } from 'vitest';
import { runAdmin, type AdminIo, type AdminWrite } from '../../src/admin/run.js';
import { validateConfig } from '../../src/config/load.js';
import { ADMIN_ATTEMPTS } from '../../src/core/admin.js';
import { DnsError } from '../../src/dns/errors.js';
import { ExitCode } from '../../src/errors.js';
import { formatLease, type Lease } from '../../src/lease/lease.js';
import type { Intended, Snapshot } from '../../src/lease/witness.js';

const { config } = validateConfig(
  'role = "primary"\n[sites]\nprimary = "10.10.10.10"\ndr = "10.20.20.20"\n[dns]\nrecord = "syslog.example.com"\nkey_file = "/k"\n[vmsync]\nenabled = false\n',
  't.toml',
);
const drLease = (seq: number): Lease => ({ holder: 'dr', epoch: 2, seq, at: 100 + seq });
const snap = (lease: Lease): Snapshot => ({ addresses: ['10.20.20.20'], addressType: 'A', leaseText: [formatLease(lease)], lease });

/** An io whose reads return the DR renewing (seq 1, 2, ...) and whose writes answer from `outcomes`. */
function io(outcomes: AdminWrite[], ready = true): AdminIo & { writes: [Snapshot, Intended][]; logs: string[] } {
  let seq = 0;
  const writes: [Snapshot, Intended][] = [];
  const logs: string[] = [];
  const log = (m: string) => logs.push(m);
  return {
    writes,
    logs,
    read: async () => snap(drLease(++seq)),
    gate: () => ({ ready, detail: ready ? 'FAILBACK READY' : 'gap of 3 ranges' }),
    collector: () => null,
    wallSeconds: () => 1000,
    write: async (seen, next) => {
      writes.push([seen, next]);
      return outcomes.shift() ?? { ok: true };
    },
    logger: { notice: log, warning: log } as unknown as AdminIo['logger'],
  };
}

describe('runAdmin: the one read-plan-CAS procedure of failback and switchover', () => {
  it('a conflict (the DR renewed meanwhile) means read and plan again; each CAS is on what was just read', async () => {
    const x = io([{ ok: false, conflict: true }, { ok: false, conflict: true }, { ok: true }]);
    const r = await runAdmin('failback', config!, { force: false, dryRun: false }, 'agent', x);
    expect(r.done).toBe(true);
    expect(x.writes.map(([seen]) => seen.lease!.seq)).toEqual([1, 2, 3]);
    expect(x.writes[2]![1]).toMatchObject({ address: '10.10.10.10', lease: { holder: 'primary', epoch: 3, seq: 4 } });
  });

  it(`gives up after ${ADMIN_ATTEMPTS} conflicts in a row (exit 1)`, async () => {
    const x = io(Array.from({ length: ADMIN_ATTEMPTS }, () => ({ ok: false, conflict: true }) as const));
    await expect(runAdmin('failback', config!, { force: false, dryRun: false }, 'direct', x)).rejects.toMatchObject({ code: 'DNS_PREREQ_FAILED', exitCode: ExitCode.REFUSED });
    expect(x.writes).toHaveLength(ADMIN_ATTEMPTS);
  });

  it('any other failure ends it with that error (its exit code: TSIG refused is 77)', async () => {
    const err = new DnsError('DNS_TSIG_BADSIG', 'bad signature');
    const x = io([{ ok: false, conflict: false, error: err }]);
    await expect(runAdmin('failback', config!, { force: false, dryRun: false }, 'agent', x)).rejects.toBe(err);
    expect(err.exitCode).toBe(ExitCode.NOPERM);
  });

  it('refused before READY (logged), forced past it (logged), and a dry run never writes', async () => {
    const refused = io([], false);
    const r = await runAdmin('failback', config!, { force: false, dryRun: false }, 'agent', refused);
    expect(r.refused).toMatch(/gap of 3 ranges/);
    expect(refused.writes).toEqual([]);
    expect(refused.logs[0]).toMatch(/^failback refused: /);
    const forced = io([], false);
    expect((await runAdmin('failback', config!, { force: true, dryRun: false }, 'agent', forced)).done).toBe(true);
    expect(forced.logs).toEqual(['failback forced past failed preconditions']);
    const dry = io([]);
    expect((await runAdmin('failback', config!, { force: false, dryRun: true }, 'agent', dry)).done).toBe(false);
    expect(dry.writes).toEqual([]);
  });

  it("checks the collector of the site that will run it, never of the site giving it up", async () => {
    // config is the primary's: a failback moves the record TO it (checked), a switchover moves it
    // away (not checked: a broken collector there is a reason to switch over).
    const failed = { ...io([]), collector: () => 'failed' as const };
    const fb = await runAdmin('failback', config!, { force: false, dryRun: true }, 'agent', failed);
    expect(fb.refused).toMatch(/^collector-unit: this site's collector unit is failed, and the primary would run the collector after the failback/);
    const primaryLease: Lease = { holder: 'primary', epoch: 2, seq: 1, at: 100 };
    const leaving = { ...io([]), collector: () => 'failed' as const, read: async () => ({ ...snap(primaryLease), addresses: ['10.10.10.10'] }) };
    const so = await runAdmin('switchover', config!, { force: false, dryRun: true }, 'agent', leaving);
    expect(so.refused).toBeNull();
    expect(so.preconditions.map((p) => p.name)).not.toContain('collector-unit');
  });
});
