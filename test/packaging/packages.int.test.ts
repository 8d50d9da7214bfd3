/**
 * The packages (issues 6 and 11): scripts/build-packages builds the .deb for Debian 12 and for
 * Debian 13, each in a clean root of that release, and the .rpm (reused when dist/packages was
 * built from exactly these sources). Each release's .deb is installed with apt into a CLEAN
 * booted container of that release (the cached roots of scripts/make-root, polkitd purged first so
 * apt has a dependency to pull), configured against a BIND on the host's loopback with a stand-in
 * collector, enabled (READY through the sd-notify addon), measured (systemd-analyze security, idle
 * RSS/CPU, start -> READY), killed by the watchdog when SIGSTOPped, upgraded to a newer build
 * (+test1), removed and purged. In between, the installed package signs with GSS-TSIG instead (a
 * real MIT KDC and a BIND with tkey-gssapi-keytab on the host's loopback, /etc/krb5.conf and the
 * keytab in the container): check-config, READY, a takeover written through the packaged gss
 * addon; with the addon moved away, check-config and the agent exit 78. The Debian 12 build also runs on Debian 13 and the Debian 13
 * build on Debian 12: the addon does not load into the other release's Node and sd_notify goes
 * through systemd-notify, READY and the watchdog included; on Debian 13 the Debian 13 build then
 * upgrades it (a distribution upgrade) back to the addon. The .rpm is inspected and installed into
 * a scratch root (scripts/package-tests/rpm-check). Figures: console and
 * dist/packages/test-measurements.json (docs/PERFORMANCE.md).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Witness } from '../../src/lease/witness.js';
import { waitWitness } from '../agent/harness.js';
import { agentConfig, STANDIN_BIN, STANDIN_UNIT } from '../fixtures/agent-in-container.js';
import { digShort, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { gssDnsTable, startGssWitness, type GssWitnessFixture } from '../fixtures/kdc.js';
import { bootContainer, defaultRoot, type Container, type Suite } from '../fixtures/nspawn.js';
import { ensurePackages, installDeb, stageDeb, type Packages } from './deb.js';
import { SITES, startToReadyMs, startWitness, withDefaultIntervals } from './dr-setup.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = 'failover-agent@dr.service';
const MAX_EXPOSURE = 1.5;
/** with the allow-list example: 1.0, plus 0.2 for NotifyAccess=all (the systemd-notify fallback) */
const MAX_EXPOSURE_ALLOWLIST = 1.2;
const IDLE_SECONDS = 30;
const READY_SAMPLES = 5;
const TAG: Record<Suite, string> = { bookworm: 'deb12', trixie: 'deb13' };
const OTHER: Record<Suite, Suite> = { bookworm: 'trixie', trixie: 'bookworm' };
const UNIT_DIR: Record<Suite, string> = { bookworm: '/lib/systemd/system', trixie: '/usr/lib/systemd/system' };

const buildInfo = (dir: string): Record<string, string> =>
  Object.fromEntries(
    fs
      .readFileSync(path.join(dir, 'build-info.txt'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

let v1: Packages;
let v2: Packages;
let srv: DnsServerFixture;
/** the GSS-TSIG witness: KDC + BIND on the host's loopback */
let gss: GssWitnessFixture;
let witness: Witness;
let httpPort: number;
const measured: Record<string, unknown> = {};

/** files on the container's root file system, less the places that change by themselves */
const SNAPSHOT =
  'find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp ' +
  '-o -path /var/log -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/lib/systemd ' +
  '-o -path /root/pkgs \\) -prune -o -print | LC_ALL=C sort';

/** One booted container and the shell helpers the tests use on it. */
class Box {
  constructor(readonly c: Container) {}
  async sh(cmd: string, timeoutMs = 60_000, input?: string | Buffer): Promise<{ code: number; out: string }> {
    const r = await this.c.exec(['sh', '-c', cmd], { timeoutMs, input });
    return { code: r.code, out: r.stdout + r.stderr };
  }
  async must(cmd: string, timeoutMs = 60_000, input?: string | Buffer): Promise<string> {
    const r = await this.sh(cmd, timeoutMs, input);
    if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}):\n${r.out}`);
    return r.out;
  }
  async prop(unit: string, p: string): Promise<string> {
    return (await this.sh(`systemctl show -p ${p} --value ${unit}`)).out.trim();
  }
  /** until the agent's STATUS= says it is the active DR (it sent READY and then STATUS) */
  async activeDr(timeoutMs = 60_000): Promise<void> {
    await this.c.waitFor(['systemctl', 'show', '-p', 'StatusText', '--value', UNIT], (r) => /^role=dr state=active/.test(r.stdout), timeoutMs);
  }
}

/** Boots a clean container of `suite` with the given packages staged in /root/pkgs. */
async function boot(suite: Suite, name: string, debs: string[]): Promise<{ box: Box; staged: string[] }> {
  const staged: string[] = [];
  const c = await bootContainer({
    name,
    baseRoot: await defaultRoot(undefined, suite),
    bootTimeoutMs: 90_000,
    setup: async (root) => {
      for (const d of debs) staged.push(stageDeb(root, d));
      fs.writeFileSync(path.join(root, 'etc/systemd/system/otelcol-contrib.service'), STANDIN_UNIT);
      fs.writeFileSync(path.join(root, 'usr/local/bin/otelcol-standin'), STANDIN_BIN, { mode: 0o755 });
    },
  });
  const box = new Box(c);
  // The root's package lists are from when it was built: refresh them (Debian's mirror).
  await box.must('apt-get update -q', 180_000);
  return { box, staged };
}

/** The witness as `failoverctl init --force` leaves it: the record names the primary, epoch 1. */
async function resetWitness(): Promise<void> {
  await witness.init(await witness.read(), SITES, Date.now() / 1000, true);
}

/** Key and config of the DR instance, then `failoverctl check-config`. */
async function configureDr(b: Box): Promise<void> {
  const key = '/etc/failover-agent/tsig.key';
  await b.must(`cat > ${key} && chown root:failover-agent ${key} && chmod 0640 ${key}`, 10_000, fs.readFileSync(srv.key.file, 'utf8'));
  await b.must('cat > /etc/failover-agent/dr.toml', 10_000, agentConfig(srv, { role: 'dr', sites: SITES, httpPort }));
  expect((await b.sh('failoverctl --instance dr check-config')).code).toBe(0);
}

/**
 * The sd_notify path the running agent took, everywhere it is reported: the log line at start,
 * failoverctl status, /healthz and failover_build_info (with the container's own Node).
 */
async function expectNotifyPath(b: Box, want: 'addon' | 'systemd-notify'): Promise<void> {
  const node = (await b.must('node --version')).trim();
  const pid = await b.prop(UNIT, 'MainPID');
  const log = await b.must(`journalctl -o cat --no-pager _PID=${pid}`);
  expect(log).toMatch(new RegExp(`event=notify_path path=${want} `));
  if (want === 'systemd-notify') expect(log).toMatch(/the sd-notify addon does not load into node/);
  const st = JSON.parse(await b.must('failoverctl --instance dr --json status')) as { build: { notify: string; node: string } };
  expect(st.build).toMatchObject({ notify: want, node });
  const hz = (await (await fetch(`http://${SITES.dr}:${httpPort}/healthz`)).json()) as { build: { notify: string; node: string } };
  expect(hz.build).toMatchObject({ notify: want, node });
  const metrics = await (await fetch(`http://${SITES.dr}:${httpPort}/metrics`)).text();
  expect(metrics).toContain(`failover_build_info{version="0.1.0",node="${node}",notify="${want}"} 1`);
}

/** With a 3 s watchdog: SIGSTOP the agent; systemd must kill it and start a new one that gets READY again. */
async function expectWatchdogRestart(b: Box): Promise<void> {
  const dir = '/etc/systemd/system/failover-agent@dr.service.d';
  try {
    await b.must(`mkdir -p ${dir} && printf '[Service]\\nWatchdogSec=3s\\n' > ${dir}/watchdog.conf && systemctl daemon-reload && systemctl reset-failed ${UNIT}; systemctl restart ${UNIT}`);
    expect(await b.prop(UNIT, 'WatchdogUSec')).toBe('3s');
    await b.activeDr();
    const pid = await b.prop(UNIT, 'MainPID');
    const restarts = Number(await b.prop(UNIT, 'NRestarts'));
    const since = (await b.must('date "+%Y-%m-%d %H:%M:%S"')).trim();
    await b.must(`kill -STOP ${pid}`);
    await b.c.waitFor(['systemctl', 'show', '-p', 'MainPID', '--value', UNIT], (r) => !['', '0', pid].includes(r.stdout.trim()), 30_000);
    await b.c.waitFor(['systemctl', 'is-active', UNIT], (r) => r.stdout.trim() === 'active', 30_000);
    expect(Number(await b.prop(UNIT, 'NRestarts'))).toBe(restarts + 1);
    expect(await b.must(`journalctl -u ${UNIT} --since '${since}' -o cat --no-pager`)).toMatch(/[Ww]atchdog timeout/);
    await b.activeDr();
  } finally {
    await b.must(`rm -rf ${dir} && systemctl daemon-reload && systemctl reset-failed ${UNIT}; systemctl restart ${UNIT}`);
  }
}

/**
 * The DR instance switched to GSS-TSIG (issue 22) against the realm's BIND, the way an operator
 * does it: /etc/krb5.conf (the realm, its KDC on the host's loopback), the principal's keytab
 * beside the config (root:failover-agent 0640, as the key file), `[dns.gss]` in dr.toml. First
 * the packaged addon moved away: check-config and the agent itself exit 78, nothing unsigned.
 * Then check-config (signed reads), `failoverctl init --force` (the record names the primary,
 * written through the addon) and the DR, which takes over once the lease runs out. Afterwards the
 * HMAC setup is back and active (the later tests and the purge's file list expect it).
 */
async function gssTakeover(b: Box): Promise<void> {
  const keytab = '/etc/failover-agent/failover.keytab';
  const addon = '/usr/lib/failover-agent/gss.node';
  const hmacConfig = await b.must('cat /etc/failover-agent/dr.toml');
  await b.must(`systemctl stop ${UNIT}`);
  try {
    await b.must('cat > /etc/krb5.conf', 10_000, fs.readFileSync(gss.kdc.env.KRB5_CONFIG));
    await b.must(`cat > ${keytab} && chown root:failover-agent ${keytab} && chmod 0640 ${keytab}`, 10_000, fs.readFileSync(gss.keytab));
    await b.must('cat > /etc/failover-agent/dr.toml', 10_000, agentConfig(gss.bind, { role: 'dr', sites: SITES, httpPort, dns: gssDnsTable(gss.bind, { principal: gss.principal }) }));

    // Without the addon: configuration error 78, in check-config and at the agent's start.
    await b.must(`mv ${addon} ${addon}.away`);
    try {
      const cc = await b.sh('failoverctl --instance dr check-config');
      expect(cc.code, cc.out).toBe(78);
      expect(cc.out).toContain(`GSS-TSIG needs the gss addon, not found at ${addon}`);
      expect((await b.sh(`systemctl start ${UNIT}`)).code).not.toBe(0);
      expect(await b.prop(UNIT, 'ExecMainStatus')).toBe('78');
    } finally {
      await b.must(`mv ${addon}.away ${addon} && systemctl reset-failed ${UNIT}`);
    }

    const cc = await b.sh('failoverctl --instance dr check-config');
    expect(cc.code, cc.out).toBe(0);
    expect(cc.out).toContain(`signing: GSS-TSIG as ${gss.principal} (keytab ${keytab}) to DNS/<SOA MNAME>`);
    expect(cc.out).toMatch(/DNS round trip: [\d.]+ ms \(median of 3 signed reads\)/);
    // BIND's update-policy grants the names to the principal only: a write that lands was signed by it.
    await b.must('failoverctl --instance dr init --force');
    expect(await digShort(gss.bind, gss.bind.record, 'A')).toEqual([SITES.primary]);
    expect((await digShort(gss.bind, gss.bind.leaseName, 'TXT')).join(' ')).toMatch(/holder=primary/);

    const since = (await b.must('date "+%Y-%m-%d %H:%M:%S"')).trim();
    await b.must(`systemctl start ${UNIT}`); // Type=notify: returns after READY
    expect(await b.prop(UNIT, 'ActiveState')).toBe('active');
    const journal = ['journalctl', '-u', UNIT, '--since', since, '-o', 'cat', '--no-pager'];
    const log = (await b.c.waitFor(journal, (r) => /event=takeover/.test(r.stdout), 45_000)).stdout;
    expect(log).toMatch(/event=start .*signing="?GSS-TSIG as /);
    expect(log).toMatch(/event=ready/);
    expect(await digShort(gss.bind, gss.bind.record, 'A')).toEqual([SITES.dr]);
    expect((await digShort(gss.bind, gss.bind.leaseName, 'TXT')).join(' ')).toMatch(/holder=dr/);
  } finally {
    await b.must(`systemctl stop ${UNIT}; rm -f /etc/krb5.conf ${keytab}`);
    await b.must('cat > /etc/failover-agent/dr.toml', 10_000, hmacConfig);
    await b.must(`systemctl reset-failed ${UNIT}; systemctl start ${UNIT}`);
  }
  await b.activeDr();
}

/** The operator's kit (issue 14), the same path in both packages. */
const OPERATOR_KIT = [
  '/usr/share/failover-agent/failover-agent.rules.yml',
  '/usr/share/failover-agent/failover-agent.rules.test.yml',
  '/usr/share/failover-agent/grafana-dashboard.json',
  '/usr/share/man/man8/failover-agent.8.gz',
  '/usr/share/man/man5/failover-agent.toml.5.gz',
  '/usr/share/bash-completion/completions/failoverctl',
];

beforeAll(async () => {
  // The current sources, and a newer version of them for the upgrade.
  v1 = await ensurePackages();
  v2 = await ensurePackages(['--version-suffix', '+test1', '--out', path.join(REPO, 'dist/packages-upgrade-test')]);
  const info = buildInfo(path.dirname(v1.rpm));
  measured.build = {
    reused: v1.reused,
    bookworm_build_seconds: Number(info['bookworm.build_seconds']),
    trixie_build_seconds: Number(info['trixie.build_seconds']),
    deb12_bytes: fs.statSync(v1.debs.bookworm).size,
    deb13_bytes: fs.statSync(v1.debs.trixie).size,
    rpm_bytes: fs.statSync(v1.rpm).size,
  };
  console.log(`packages: ${JSON.stringify(measured.build)}`);
  ({ srv, witness, httpPort } = await startWitness());
  gss = await startGssWitness();
}, 1_800_000);

afterAll(async () => {
  await srv?.stop();
  await gss?.stop();
  if (Object.keys(measured).length) {
    const out = path.join(REPO, 'dist/packages/test-measurements.json');
    fs.writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), ...measured }, null, 2) + '\n');
    console.log(`measurements (${out}):\n${JSON.stringify(measured, null, 2)}`);
  }
});

function releaseSuite(suite: Suite): void {
  const tag = TAG[suite];
  describe(`the ${tag} .deb in a clean booted ${suite}`, { timeout: 180_000 }, () => {
    let b: Box;
    let debV1: string;
    let debV2: string;
    let before: Set<string>;
    const m: Record<string, unknown> = {};

    beforeAll(async () => {
      const booted = await boot(suite, `fa-pkg-${suite}`, [v1.debs[suite], v2.debs[suite]]);
      b = booted.box;
      [debV1, debV2] = booted.staged;
      measured[suite] = m;
      // A dependency for apt to pull: polkitd (Recommends) is in the cached root; take it out.
      await b.must('DEBIAN_FRONTEND=noninteractive apt-get purge -y -q polkitd', 120_000);
      before = new Set((await b.must(SNAPSHOT)).split('\n'));
      await resetWitness();
    }, 900_000);

    afterAll(async () => {
      await b?.c.stop();
    });

    it(`apt-get install ./failover-agent_*+${tag}_amd64.deb pulls its dependencies and creates the user; nothing is enabled`, async () => {
      const t0 = performance.now();
      const out = await installDeb(b.c, debV1);
      m.apt_install_seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
      const newPkgs = /The following NEW packages will be installed:\n((?: .*\n)+)/.exec(out)?.[1].trim().split(/\s+/) ?? [];
      expect(newPkgs, out).toContain('failover-agent');
      expect(newPkgs, out).toContain('polkitd');
      expect(await b.must("dpkg-query -W -f '${Status} ${Version}' failover-agent")).toBe(`install ok installed 0.1.0+${tag}`);
      expect(await b.must("dpkg-query -W -f '${Status}' polkitd")).toBe('install ok installed');
      // no Node ABI pin: nodejs (>= 18.19~) only, no libnode<ABI>; the system bus as Debian names it
      const depends = await b.must("dpkg-query -W -f '${Depends}' failover-agent");
      expect(depends).toMatch(/(^|, )default-dbus-system-bus \| dbus-system-bus(,|$)/);
      expect(depends).toMatch(/(^|, )nodejs \(>= 18\.19~\)(,|$)/);
      expect(depends).not.toMatch(/libnode|nodejs \(<</);
      // the gss addon's GSS-API library, from dh_shlibdeps
      expect(depends).toMatch(/(^|, )libgssapi-krb5-2 \(>= [^)]+\)(,|$)/);
      expect(await b.must('getent passwd failover-agent')).toMatch(/^failover-agent:x:\d+:\d+:failover-agent service:\/var\/lib\/failover-agent:\/usr\/sbin\/nologin/);
      const files = (await b.must('dpkg -L failover-agent')).split('\n');
      for (const f of [
        '/usr/lib/failover-agent/agent.js',
        '/usr/lib/failover-agent/agent-main.js',
        '/usr/lib/failover-agent/failoverctl.js',
        '/usr/lib/failover-agent/node_modules/sd-notify/build/Release/notify.node',
        '/usr/lib/failover-agent/gss.node',
        '/usr/lib/failover-agent/node_modules/bindings/bindings.js',
        '/usr/lib/failover-agent/node_modules/file-uri-to-path/index.js',
        '/usr/bin/failoverctl',
        `${UNIT_DIR[suite]}/failover-agent@.service`,
        `${UNIT_DIR[suite]}/failover-agent.target`,
        '/usr/lib/sysusers.d/failover-agent.conf',
        '/usr/share/polkit-1/rules.d/50-failover-agent.rules',
        '/etc/failover-agent/dr.toml.example',
        '/etc/failover-agent/primary.toml.example',
        '/usr/share/man/man1/failoverctl.1.gz',
        '/usr/share/doc/failover-agent/README.md',
        ...OPERATOR_KIT,
      ]) {
        expect(files, f).toContain(f);
      }
      expect((await b.must('cat /var/lib/dpkg/info/failover-agent.conffiles')).trim().split('\n').sort()).toEqual([
        '/etc/failover-agent/dr.toml.example',
        '/etc/failover-agent/primary.toml.example',
      ]);
      // Never auto-enabled or started: the template is skipped, the target is static.
      expect((await b.sh(`systemctl is-enabled ${UNIT}`)).out.trim()).toBe('disabled');
      expect((await b.sh('systemctl is-enabled failover-agent.target')).out.trim()).toBe('static');
      expect((await b.sh('systemctl is-active failover-agent.target')).out.trim()).toBe('inactive');
      expect((await b.sh('systemctl list-units --all --plain --no-legend "failover-agent@*"')).out.trim()).toBe('');
      // The addon loads into this release's Node (the ABI it was built for).
      expect(await b.must(`node -e 'console.log(typeof require("/usr/lib/failover-agent/node_modules/sd-notify").sendState)'`)).toBe('function\n');
      expect(await b.must(`node -e 'console.log(typeof require("/usr/lib/failover-agent/gss.node").getMic)'`)).toBe('function\n');
      expect(await b.must('failoverctl --version')).toBe(`failoverctl 0.1.0 (node ${(await b.must('node --version')).trim()})\n`);
    });

    it('systemctl enable --now failover-agent@dr returns after READY (through the addon); a takeover starts the collector over D-Bus', async () => {
      await configureDr(b);
      const t0 = performance.now();
      await b.must(`systemctl enable --now ${UNIT}`);
      m.enable_now_ms = Math.round(performance.now() - t0);
      // Type=notify: enable --now returned, so the manager saw READY=1; STATUS= came too.
      expect(await b.prop(UNIT, 'ActiveState')).toBe('active');
      expect(await b.prop(UNIT, 'User')).toBe('failover-agent');
      expect(await b.prop('failover-agent.target', 'ActiveState')).toBe('active');
      expect(await b.prop(UNIT, 'StatusText')).toMatch(/^role=dr state=/);
      await expectNotifyPath(b, 'addon');
      // The primary never renews here: the DR takes over once the lease has run out, and starts
      // the collector through D-Bus as the service user (the packaged polkit rule).
      await waitWitness(witness, (s) => s.addresses[0] === SITES.dr, 45_000, 250);
      await b.c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 20_000);
      const log = (
        await b.c.waitFor(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager'], (r) => /event=collector_start unit=otelcol-contrib\.service/.test(r.stdout), 20_000)
      ).stdout;
      expect(log).toMatch(/event=ready/);
      expect(log).toMatch(/event=takeover/);
      const st = JSON.parse(await b.must('failoverctl --instance dr --json status')) as { role: string; active: boolean };
      expect(st.role).toBe('dr');
    });

    it(`systemd-analyze security ${UNIT}: overall exposure <= ${MAX_EXPOSURE}`, async () => {
      const out = (await b.sh(`systemd-analyze security --no-pager ${UNIT}`)).out;
      const match = /Overall exposure level for \S+: (\d+\.\d+)/.exec(out);
      expect(match, out).not.toBeNull();
      const score = Number(match![1]);
      m.security_exposure = score;
      fs.writeFileSync(path.join(REPO, `dist/packages/systemd-analyze-security-${suite}.txt`), out);
      console.log(`${suite}: systemd-analyze security ${UNIT}: ${score}`);
      expect(score).toBeLessThanOrEqual(MAX_EXPOSURE);
    });

    it(`with the shipped IP allow-list example as a drop-in: exposure <= ${MAX_EXPOSURE_ALLOWLIST}, and the agent still works`, async () => {
      const dir = '/etc/systemd/system/failover-agent@dr.service.d';
      await b.must(`mkdir -p ${dir} && cp /usr/share/doc/failover-agent/examples/ip-allowlist.conf ${dir}/ && systemctl daemon-reload`);
      try {
        const out = (await b.sh(`systemd-analyze security --no-pager ${UNIT}`)).out;
        const score = Number(/Overall exposure level for \S+: (\d+\.\d+)/.exec(out)![1]);
        m.security_exposure_with_ip_allowlist = score;
        expect(score).toBeLessThanOrEqual(MAX_EXPOSURE_ALLOWLIST);
        const pid = await b.prop(UNIT, 'MainPID');
        await b.must(`systemctl restart ${UNIT}`);
        expect(await b.prop(UNIT, 'MainPID')).not.toBe(pid);
        // everything in this test is on 127.0.0.0/8 ("localhost" in the example)
        await b.activeDr(30_000);
      } finally {
        await b.must(`rm -r ${dir} && systemctl daemon-reload && systemctl restart ${UNIT}`);
      }
      await b.activeDr(30_000);
    });

    it(`idle footprint over ${IDLE_SECONDS} s (RSS, CPU) and start -> READY, with the default intervals`, async () => {
      // The shipped defaults (lease ttl 30s, renew every 10s, max_skew 5s, health every 10s,
      // collector every 5s) instead of the test's fast ones; restored afterwards.
      const fast = agentConfig(srv, { role: 'dr', sites: SITES, httpPort });
      await b.must('cat > /etc/failover-agent/dr.toml', 10_000, withDefaultIntervals(fast));
      // The restarts below run with the V8 code cache, which the running agent writes 10 s after its start.
      await b.c.waitFor(['ls', '/var/cache/failover-agent'], (r) => /\.v8cache$/m.test(r.stdout), 30_000);
      const readyMs = await startToReadyMs((cmd) => b.must(cmd), UNIT, READY_SAMPLES);
      m.start_to_ready_ms = readyMs;
      // Where the last start's time went (monotonic journal stamps: systemd's "Starting", the
      // agent's first line after config and key, "starting" after the witness opened, READY).
      const jr = (await b.must(`journalctl -o short-monotonic --no-pager -n 60 _SYSTEMD_UNIT=${UNIT} + UNIT=${UNIT}`)).split('\n');
      const from = jr.map((l) => /Starting failover-agent/.test(l)).lastIndexOf(true);
      m.last_start_log = jr.slice(Math.max(0, from)).filter((l) => /Starting|Started|event=(notify_path|start|ready) /.test(l)).map((l) => l.slice(0, 160));
      expect(readyMs.every((x) => x > 0)).toBe(true);
      // These starts ran the agent with the V8 code cache an earlier start (> 10 s) wrote.
      const lastStart = (await b.must(`journalctl -o cat --no-pager -n 40 _SYSTEMD_UNIT=${UNIT}`)).split('\n').filter((l) => / event=start /.test(l)).pop();
      expect(lastStart).toMatch(/ code_cache=used( |$)/);
      expect((await b.must('ls /var/cache/failover-agent')).trim()).toMatch(/^agent-main\.v[\d.]+\.x64\.[0-9a-f]{16}\.v8cache$/);
      await b.activeDr();
      await new Promise((r) => setTimeout(r, 5000)); // past the start-up work
      const pid = await b.prop(UNIT, 'MainPID');
      const hz = Number((await b.must('getconf CLK_TCK')).trim());
      // utime + stime (fields 14, 15 of /proc/PID/stat, clock ticks) and the status lines
      const sample = async () => {
        const stat = (await b.must(`cat /proc/${pid}/stat`)).trim();
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const status = await b.must(`cat /proc/${pid}/status`);
        const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
        return { t: performance.now(), ticks: Number(f[11]) + Number(f[12]), rss: kib('VmRSS'), anon: kib('RssAnon'), hwm: kib('VmHWM') };
      };
      const a = await sample();
      await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
      const z = await sample();
      expect(await b.prop(UNIT, 'MainPID')).toBe(pid);
      m.idle = {
        node: (await b.must('node --version')).trim(),
        seconds: Number(((z.t - a.t) / 1000).toFixed(1)),
        cpu_percent: Number(((((z.ticks - a.ticks) / hz) * 1000 / (z.t - a.t)) * 100).toFixed(2)),
        vmrss_kib: z.rss,
        rss_anon_kib: z.anon,
        vmhwm_kib: z.hwm,
        note: 'active DR, default intervals: lease renewed every 10 s, collector checked every 5 s',
      };
      // where the resident memory is: KiB per mapping (file, or [heap]/anonymous), the largest
      const smaps = await b.must(`awk '/^[0-9a-f]+-/ { n = $6 } /^Rss:/ { r[n] += $2 } END { for (k in r) if (r[k] >= 512) print r[k], k }' /proc/${pid}/smaps | sort -rn`);
      m.rss_by_mapping_kib = smaps.trim().split('\n');
      console.log(`${suite} idle: ${JSON.stringify(m.idle)}; start -> READY ms: ${readyMs.join(' ')}; rss by mapping: ${smaps.trim().split('\n').join('; ')}`);
      expect(z.rss).toBeGreaterThan(0);
      await b.must('cat > /etc/failover-agent/dr.toml', 10_000, fast);
      await b.must(`systemctl restart ${UNIT}`);
      await b.activeDr();
    }, 240_000);

    it('the watchdog restarts a SIGSTOPped agent', async () => {
      await expectWatchdogRestart(b);
    });

    it('with dns.auth = "gss-tsig" (/etc/krb5.conf, a keytab): exit 78 without the addon; check-config signs with GSS-TSIG, READY, a signed takeover', async () => {
      await gssTakeover(b);
    });

    it("an upgrade restarts the running instance through the target and keeps the admin's files", async () => {
      const pid = await b.prop(UNIT, 'MainPID');
      await b.must("echo '# edited by the admin' >> /etc/failover-agent/dr.toml");
      await b.must("echo '# edited by the admin' >> /etc/failover-agent/dr.toml.example");
      await b.must('rm /etc/failover-agent/primary.toml.example');
      const since = (await b.must('date "+%Y-%m-%d %H:%M:%S"')).trim();
      const t0 = performance.now();
      // No --force-conf*: a conffile prompt would hit the closed stdin and fail the upgrade.
      await installDeb(b.c, debV2);
      m.apt_upgrade_seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
      expect(await b.must("dpkg-query -W -f '${Version}' failover-agent")).toBe(`0.1.0+test1+${tag}`);
      const newPid = await b.prop(UNIT, 'MainPID');
      expect(newPid).not.toBe(pid);
      expect(newPid).not.toBe('0');
      await b.c.waitFor(['systemctl', 'is-active', UNIT], (r) => r.stdout.trim() === 'active', 60_000);
      // through the target: it was restarted, and the instance with it (PartOf=)
      const journal = await b.must(`journalctl --since '${since}' -o cat --no-pager`);
      expect(journal).toMatch(/Stopp(ing|ed) failover-agent instances|Stopped target failover-agent/);
      expect(await b.must('tail -1 /etc/failover-agent/dr.toml')).toBe('# edited by the admin\n');
      // dpkg's conffile rules: the admin's change stays (the packaged file did not change), a
      // deleted conffile stays deleted.
      expect(await b.must('tail -1 /etc/failover-agent/dr.toml.example')).toBe('# edited by the admin\n');
      expect((await b.sh('test -e /etc/failover-agent/primary.toml.example')).code).not.toBe(0);
      // the upgraded agent works
      await b.activeDr(30_000);
    });

    it("apt-get remove stops the instance and keeps config and state; purge leaves only the admin's files", async () => {
      await b.must('DEBIAN_FRONTEND=noninteractive apt-get remove -y -q failover-agent', 120_000);
      expect(await b.prop(UNIT, 'ActiveState')).toMatch(/inactive|failed/);
      expect(await b.must("dpkg-query -W -f '${Status}' failover-agent")).toBe('deinstall ok config-files');
      expect((await b.sh('test -e /usr/lib/failover-agent')).code).not.toBe(0);
      expect((await b.sh('test -d /var/lib/failover-agent/dr')).code).toBe(0);
      expect((await b.sh('test -f /etc/failover-agent/dr.toml.example')).code).toBe(0);

      await b.must('DEBIAN_FRONTEND=noninteractive apt-get purge -y -q failover-agent', 120_000);
      expect((await b.sh('dpkg-query -W -f "${Status}" failover-agent')).out).not.toMatch(/installed|config-files/);
      expect((await b.sh('dpkg -L failover-agent')).code).not.toBe(0);
      expect((await b.sh('test -e /var/lib/failover-agent')).code).not.toBe(0);
      expect((await b.sh('test -e /run/failover-agent')).code).not.toBe(0);
      expect((await b.sh('ls /etc/systemd/system/multi-user.target.wants/')).out).not.toMatch(/failover-agent/);
      // What the admin created stays (not the package's files: docs/PACKAGING.md), and so does the
      // system user (Debian does not remove system users).
      expect((await b.must('ls -A /etc/failover-agent')).trim().split('\n').sort()).toEqual(['dr.toml', 'tsig.key']);
      expect((await b.sh('getent passwd failover-agent')).code).toBe(0);
      // Nothing else: every path that is new since before the install belongs to polkitd (pulled
      // in as a dependency and still installed: its files and what its postinst registers) or is
      // the admin's.
      const polkitd = new Set((await b.must('dpkg -L polkitd')).split('\n'));
      const after = (await b.must(SNAPSHOT)).split('\n');
      const added = after.filter((p) => p && !before.has(p) && !polkitd.has(p));
      expect(added.filter((p) => !/polkit/.test(p) || /failover/.test(p))).toEqual([
        '/etc/failover-agent',
        '/etc/failover-agent/dr.toml',
        '/etc/failover-agent/tsig.key',
      ]);
    });
  });
}

/** The other release's build on `suite`: the addon does not load, sd_notify goes through systemd-notify. */
function crossSuite(suite: Suite): void {
  const from = OTHER[suite];
  describe(`the ${TAG[from]} .deb on ${suite}: sd_notify through systemd-notify`, { timeout: 180_000 }, () => {
    let b: Box;
    let foreign: string;
    let native: string;

    beforeAll(async () => {
      const booted = await boot(suite, `fa-pkg-${TAG[from]}-on-${suite}`, [v1.debs[from], v1.debs[suite]]);
      b = booted.box;
      [foreign, native] = booted.staged;
      await resetWitness();
    }, 900_000);

    afterAll(async () => {
      await b?.c.stop();
    });

    it(`installs on ${suite}'s Node and enable --now returns after READY, sent by systemd-notify`, async () => {
      await installDeb(b.c, foreign);
      expect(await b.must("dpkg-query -W -f '${Status} ${Version}' failover-agent")).toBe(`install ok installed 0.1.0+${TAG[from]}`);
      // the addon was built for the other release's Node: it does not load here
      expect((await b.sh(`node -e 'require("/usr/lib/failover-agent/node_modules/sd-notify")'`)).code).not.toBe(0);
      // the gss addon is N-API only (linked without libnode): it loads into either release's Node
      expect(await b.must(`node -e 'console.log(typeof require("/usr/lib/failover-agent/gss.node").getMic)'`)).toBe('function\n');
      await configureDr(b);
      await b.must(`systemctl enable --now ${UNIT}`);
      expect(await b.prop(UNIT, 'ActiveState')).toBe('active');
      expect(await b.prop(UNIT, 'StatusText')).toMatch(/^role=dr state=/);
      await expectNotifyPath(b, 'systemd-notify');
      // STATUS= keeps following the state through the fallback: the takeover shows in it
      await waitWitness(witness, (s) => s.addresses[0] === SITES.dr, 45_000, 250);
      await b.activeDr(30_000);
      await b.c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 20_000);
    });

    it('the watchdog still works: a SIGSTOPped agent is restarted and gets READY again', async () => {
      await expectWatchdogRestart(b);
      await expectNotifyPath(b, 'systemd-notify');
    });

    // (only upwards: +deb13 is newer than +deb12, the way a distribution upgrade goes)
    if (suite === 'trixie') {
      it(`${suite}'s own build upgrades it (a distribution upgrade) and the addon path is back`, async () => {
        const pid = await b.prop(UNIT, 'MainPID');
        await installDeb(b.c, native);
        expect(await b.must("dpkg-query -W -f '${Version}' failover-agent")).toBe(`0.1.0+${TAG[suite]}`);
        await b.c.waitFor(['systemctl', 'show', '-p', 'MainPID', '--value', UNIT], (r) => !['', '0', pid].includes(r.stdout.trim()), 60_000);
        await b.c.waitFor(['systemctl', 'is-active', UNIT], (r) => r.stdout.trim() === 'active', 60_000);
        await expectNotifyPath(b, 'addon');
      });
    }
  });
}

releaseSuite('bookworm');
releaseSuite('trixie');
crossSuite('trixie');
crossSuite('bookworm');

describe('the .rpm', { timeout: 120_000 }, () => {
  let out: string;
  const section = (name: string): string => {
    const m = new RegExp(`=== ${name} ===\\n([\\s\\S]*?)=== rc ${name} (\\d+) ===`).exec(out);
    if (!m) throw new Error(`no section ${name} in:\n${out}`);
    return m[1];
  };
  const rc = (name: string): number => Number(new RegExp(`=== rc ${name} (\\d+) ===`).exec(out)![1]);

  beforeAll(async () => {
    out = await new Promise<string>((resolve, reject) =>
      execFile(path.join(REPO, 'scripts/package-tests/rpm-check'), [v1.rpm], { timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
        err ? reject(new Error(`rpm-check failed: ${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
  }, 180_000);

  it('file list, config files, requirements', () => {
    const files = section('qlp');
    for (const f of [
      '/usr/lib/failover-agent/agent.js',
      '/usr/lib/failover-agent/agent-main.js',
      '/usr/lib/failover-agent/node_modules/sd-notify/build/Release/notify.node',
      '/usr/lib/failover-agent/gss.node',
      '/usr/bin/failoverctl',
      '/usr/lib/systemd/system/failover-agent@.service',
      '/usr/lib/systemd/system/failover-agent.target',
      '/usr/lib/sysusers.d/failover-agent.conf',
      '/usr/share/polkit-1/rules.d/50-failover-agent.rules',
      '/usr/share/man/man1/failoverctl.1.gz',
      '/usr/share/doc/failover-agent/README.md',
      ...OPERATOR_KIT,
    ]) {
      expect(files).toContain(f);
    }
    expect(section('configfiles').trim().split('\n')).toEqual(['/etc/failover-agent/dr.toml.example', '/etc/failover-agent/primary.toml.example']);
    const req = section('requires');
    expect(req).toMatch(/^nodejs >= 18\.19$/m);
    // no Node ABI pin: any Node from 18.19 on (the addon falls back to systemd-notify)
    expect(req).not.toMatch(/nodejs\(abi|libnode/);
    expect(req).toMatch(/^libsystemd\.so\.0\(\)\(64bit\)$/m);
    // the gss addon's GSS-API library (krb5-libs on an RPM distribution)
    expect(req).toMatch(/^libgssapi_krb5\.so\.2\(\)\(64bit\)$/m);
    expect(req).toMatch(/^dbus$/m);
    expect(section('info')).toMatch(/Build Host\s*: reproducible/);
  });

  it('scriptlets: sysusers in %pre, the target (never the template) in %post/%preun/%postun', () => {
    const s = section('scripts');
    expect(s).toMatch(/preinstall scriptlet[\s\S]*systemd-sysusers --replace=\/usr\/lib\/sysusers\.d\/failover-agent\.conf -[\s\S]*^u failover-agent /m);
    expect(s).toMatch(/postinstall scriptlet[\s\S]*preset failover-agent\.target/);
    expect(s).toMatch(/preuninstall scriptlet[\s\S]*disable --now failover-agent\.target/);
    expect(s).toMatch(/postuninstall scriptlet[\s\S]*try-restart failover-agent\.target/);
    expect(s).not.toMatch(/failover-agent@/);
  });

  it('installs into a scratch root (--nodeps), creates the user, loads the addon, erases by rpm rules', () => {
    expect(rc('install')).toBe(0);
    expect(section('user')).toMatch(/^failover-agent:x:\d+:\d+:failover-agent service:\/var\/lib\/failover-agent:\/usr\/sbin\/nologin/);
    expect(rc('files-present')).toBe(0);
    expect(section('addon-loads').trim()).toBe('function');
    expect(section('gss-addon-loads').trim()).toBe('function');
    // failoverctl runs in the scratch root; the example's key file does not exist there (77)
    expect(rc('failoverctl')).toBe(77);
    expect(section('failoverctl')).toMatch(/tsig\.key does not exist/);
    // the edited %config(noreplace) file is reported, and saved as .rpmsave on erase
    expect(section('verify')).toMatch(/^S\.5\.\.\.\.T\.\s+c \/etc\/failover-agent\/dr\.toml\.example$/m);
    expect(rc('erase')).toBe(0);
    expect(section('after-erase')).toMatch(/dr\.toml\.example\.rpmsave/);
    expect(section('after-erase')).toMatch(/cannot access 'usr\/lib\/failover-agent'/);
  });
});
