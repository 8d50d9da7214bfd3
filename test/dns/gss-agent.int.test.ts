/**
 * GSS-TSIG through the agent's own wiring on a REAL local realm (MIT krb5kdc + BIND 9 with
 * tkey-gssapi-keytab on 127.0.0.1): a gss-tsig configuration file → failoverctl check-config and
 * init (in process) → the Witness the agent builds (openWitness + loadSigning) renews with a signed
 * CAS over ONE reused context; named restarted with its contexts lost (its .tsigkeys dump removed) → the next CAS is refused
 * BADKEY, renegotiates once and succeeds. A stale CAS answers NXRRSET, authenticated.
 * A missing krb5kdc or named fails the test (never a skip).
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { DnsError } from '../../src/dns/errors.js';
import type { GssSessionEvent } from '../../src/dns/gss/context.js';
import { loadSigning } from '../../src/dns/signing.js';
import { openWitness, type OpenedWitness } from '../../src/lease/open.js';
import { renewalOf } from '../../src/lease/witness.js';
import { runInProcess } from '../cli/in-process.js';
import { digShort, requireBinary, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { AGENT_PRINCIPAL as AGENT, gssDnsTable, startGssWitness, type GssWitnessFixture } from '../fixtures/kdc.js';

const PRIMARY = '10.10.10.10';
const DR = '10.20.20.20';

let realm: GssWitnessFixture;
let bind: DnsServerFixture;
let dir: string;
let configFile: string;
const opened: OpenedWitness[] = [];

beforeAll(async () => {
  for (const tool of ['named', 'dig']) requireBinary(tool);
  realm = await startGssWitness();
  bind = realm.bind;
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fa-gss-agent-'));
  const keytab = path.join(dir, 'failover.keytab');
  await fsp.copyFile(realm.keytab, keytab);
  await fsp.chmod(keytab, 0o600);
  configFile = path.join(dir, 'primary.toml');
  // No server_principal: DNS/<SOA MNAME> (ns.example.test), found at start as nsupdate -g does.
  await fsp.writeFile(
    configFile,
    `role = "primary"
[sites]
primary = "${PRIMARY}"
dr = "${DR}"
${gssDnsTable(bind, { principal: AGENT, timeout: '2s' })}
[collector]
control = "none"
`,
  );
}, 60_000);

afterAll(async () => {
  for (const o of opened) o.gss?.close();
  await realm?.stop();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

const dig = (name: string, type: string): Promise<string[]> => digShort(bind, name, type);

describe('a gss-tsig configuration through failoverctl and the Witness (MIT krb5kdc + BIND 9)', () => {
  it('check-config passes and says it signs with GSS-TSIG, measuring signed reads', async () => {
    const r = await runInProcess(['--config', configFile, 'check-config']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain(`signing: GSS-TSIG as ${AGENT} (keytab ${path.join(dir, 'failover.keytab')}) to DNS/<SOA MNAME>`);
    expect(r.stdout).toMatch(/DNS round trip: [\d.]+ ms \(median of 3 signed reads\)/);
  }, 30_000);

  it('init writes the record and the lease, signed; dig sees them', async () => {
    const r = await runInProcess(['--config', configFile, '--json', 'init']);
    expect(r.code, r.stderr + r.stdout + bind.log().slice(-2000)).toBe(0);
    expect(await dig(bind.record, 'A')).toEqual([PRIMARY]);
    expect((await dig(bind.leaseName, 'TXT')).join(' ')).toMatch(/holder=primary/);
  }, 30_000);

  it('renewals over ONE context; named restarted → BADKEY → renegotiated once → the CAS succeeds; a stale CAS is NXRRSET, authenticated', async () => {
    const config = loadConfig(configFile);
    const events: GssSessionEvent[] = [];
    const w = await openWitness(config, loadSigning(config), { onGssEvent: (e) => events.push(e) });
    opened.push(w);
    const first = await w.witness.read();
    expect(first.lease).toMatchObject({ holder: 'primary' });
    let seen = (await w.witness.write(first, renewalOf(first, Date.now() / 1000))).snapshot;
    seen = (await w.witness.write(seen, renewalOf(seen, Date.now() / 1000))).snapshot;
    expect(w.gss!.negotiations).toBe(1);
    expect(events).toEqual([expect.objectContaining({ kind: 'negotiated', why: 'first' })]);
    expect((await dig(bind.leaseName, 'TXT')).join(' ')).toContain(`seq=${seen.lease!.seq}`);

    // A stale CAS (the first snapshot): refused by its prerequisite, and the refusal is signed.
    const stale = await w.witness.write(first, renewalOf(first, Date.now() / 1000)).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(DnsError);
    expect(stale).toMatchObject({ code: 'DNS_PREREQ_FAILED', rcode: 'NXRRSET', authenticated: true });

    // named dumps its TKEY-made keys (GSS contexts included) into <view>.tsigkeys at shutdown and
    // reads them back at start: a context survives a clean restart. Lose them, as a crash, a
    // failover to a fresh server or another server (AD) would.
    let dumped: string[] = [];
    await bind.restart({
      whileDown: async () => {
        dumped = (await fsp.readdir(bind.dir)).filter((f) => f.endsWith('.tsigkeys'));
        for (const f of dumped) await fsp.rm(path.join(bind.dir, f));
      },
    });
    expect(dumped.length, 'named dumped its TKEY keys').toBeGreaterThan(0);
    const after = await w.witness.write(seen, renewalOf(seen, Date.now() / 1000));
    expect(after.snapshot.lease!.seq).toBe(seen.lease!.seq + 1);
    expect(w.gss!.negotiations).toBe(2);
    expect(events.map((e) => (e.kind === 'negotiated' ? e.why : `failed ${e.why}`))).toEqual(['first', 'rejected']);
    expect((await dig(bind.leaseName, 'TXT')).join(' ')).toContain(`seq=${after.snapshot.lease!.seq}`);
    // And the new context is reused again.
    const again = await w.witness.read();
    expect(again.lease!.seq).toBe(after.snapshot.lease!.seq);
    expect(w.gss!.negotiations).toBe(2);
  }, 60_000);
});
