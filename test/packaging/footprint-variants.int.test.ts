/**
 * A/B of start -> READY and idle RSS for variants of the installed agent (issue 11), in booted
 * containers of both releases with that release's .deb, measured as test/packaging/packages.int.test.ts
 * measures the shipped one (an ACTIVE DR with the default intervals). Runs only when asked:
 *
 *   FOOTPRINT_VARIANTS=/dir heavy npx vitest run test/packaging/footprint-variants.int.test.ts
 *
 * /dir/variants.json: [{ "name": "...", "bundle": "file.js" (in /dir; default: the packaged one),
 * "dropIn": "[Service]\n..." (optional drop-in for failover-agent@.service) }, ...]. Figures:
 * console and /dir/results.json (docs/PERFORMANCE.md).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Witness } from '../../src/lease/witness.js';
import { agentConfig, STANDIN_BIN, STANDIN_UNIT } from '../fixtures/agent-in-container.js';
import type { DnsServerFixture } from '../fixtures/dns-servers.js';
import { bootContainer, defaultRoot, type Container, type Suite } from '../fixtures/nspawn.js';
import { ensurePackages, installDeb, stageDeb, type Packages } from './deb.js';
import { SITES, startToReadyMs, startWitness, withDefaultIntervals } from './dr-setup.js';

const DIR = process.env.FOOTPRINT_VARIANTS ?? '';
const UNIT = 'failover-agent@dr.service';
const STARTS = Number(process.env.FOOTPRINT_STARTS ?? 7);
const IDLE_MS = Number(process.env.FOOTPRINT_IDLE_MS ?? 20_000);

interface Variant {
  name: string;
  bundle?: string;
  dropIn?: string;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let pkgs: Packages;
let srv: DnsServerFixture;
let witness: Witness;
let httpPort: number;
const results: Record<string, unknown[]> = {};

describe.skipIf(!DIR)('footprint variants', () => {
  beforeAll(async () => {
    pkgs = await ensurePackages();
    ({ srv, witness, httpPort } = await startWitness());
  }, 1_800_000);

  afterAll(async () => {
    await srv?.stop();
    if (DIR) fs.writeFileSync(path.join(DIR, 'results.json'), JSON.stringify({ at: new Date().toISOString(), results }, null, 2) + '\n');
  });

  for (const suite of ['bookworm', 'trixie'] as Suite[]) {
    it(`${suite}: each variant, ${STARTS} starts and the idle RSS after ${IDLE_MS} ms`, async () => {
      const variants = JSON.parse(fs.readFileSync(path.join(DIR, 'variants.json'), 'utf8')) as Variant[];
      let staged = '';
      const c: Container = await bootContainer({
        name: `fa-fp-${suite}`,
        baseRoot: await defaultRoot(undefined, suite),
        bootTimeoutMs: 90_000,
        setup: async (root) => {
          staged = stageDeb(root, pkgs.debs[suite]);
          fs.writeFileSync(path.join(root, 'etc/systemd/system/otelcol-contrib.service'), STANDIN_UNIT);
          fs.writeFileSync(path.join(root, 'usr/local/bin/otelcol-standin'), STANDIN_BIN, { mode: 0o755 });
        },
      });
      const sh = async (cmd: string, input?: string | Buffer, timeoutMs = 120_000): Promise<string> => {
        const r = await c.exec(['sh', '-c', cmd], { timeoutMs, input });
        if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}):\n${r.stdout}${r.stderr}`);
        return r.stdout;
      };
      const activeDr = () => c.waitFor(['systemctl', 'show', '-p', 'StatusText', '--value', UNIT], (r) => /^role=dr state=active/.test(r.stdout), 60_000);
      try {
        await installDeb(c, staged);
        await sh('cat > /etc/failover-agent/tsig.key && chown root:failover-agent /etc/failover-agent/tsig.key && chmod 0640 /etc/failover-agent/tsig.key', fs.readFileSync(srv.key.file, 'utf8'));
        const fast = agentConfig(srv, { role: 'dr', sites: SITES, httpPort });
        await witness.init(await witness.read(), SITES, Date.now() / 1000, true);
        await sh('cat > /etc/failover-agent/dr.toml', fast);
        await sh(`systemctl enable --now ${UNIT}`);
        await activeDr(); // the primary never renews: the DR takes over
        await sh('cat > /etc/failover-agent/dr.toml', withDefaultIntervals(fast)); // as packages.int.test.ts measures
        await sh('cp /usr/lib/failover-agent/agent.js /root/agent.packaged.js');
        const node = (await sh('node --version')).trim();
        const rows: unknown[] = (results[suite] = []);
        for (const v of variants) {
          if (v.bundle) await sh('cat > /usr/lib/failover-agent/agent.js', fs.readFileSync(path.join(DIR, v.bundle)));
          else await sh('cp /root/agent.packaged.js /usr/lib/failover-agent/agent.js');
          const dir = '/etc/systemd/system/failover-agent@.service.d';
          await sh(`mkdir -p ${dir} && rm -f ${dir}/variant.conf`);
          if (v.dropIn) await sh(`cat > ${dir}/variant.conf`, v.dropIn);
          await sh('systemctl daemon-reload');
          const readyMs = await startToReadyMs((cmd) => sh(cmd), UNIT, STARTS);
          await activeDr();
          await new Promise((r) => setTimeout(r, IDLE_MS));
          const pid = (await sh(`systemctl show -p MainPID --value ${UNIT}`)).trim();
          const status = await sh(`cat /proc/${pid}/status`);
          const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
          const heap = (await sh(`awk '/^[0-9a-f]+-/ { n = $6 } /^Rss:/ { if (n == "[heap]") r += $2 } END { print r + 0 }' /proc/${pid}/smaps`)).trim();
          const row = { variant: v.name, node, ready_ms: readyMs, ready_median_ms: median(readyMs), vmrss_mib: +(kib('VmRSS') / 1024).toFixed(1), rss_anon_mib: +(kib('RssAnon') / 1024).toFixed(1), rss_file_mib: +(kib('RssFile') / 1024).toFixed(1), malloc_heap_mib: +(Number(heap) / 1024).toFixed(1), vmhwm_mib: +(kib('VmHWM') / 1024).toFixed(1) };
          rows.push(row);
          console.log(`${suite} ${JSON.stringify(row)}`);
          expect(readyMs.every((x) => x > 0)).toBe(true);
        }
      } finally {
        await c.stop();
      }
    }, 1_800_000);
  }
});
