/**
 * The packages (issue 6): scripts/build-packages builds the .deb and the .rpm in a clean bookworm
 * root (reused when dist/packages was built from exactly these sources), then the .deb is
 * installed with apt into a CLEAN booted container (the cached root of scripts/make-root, polkitd
 * purged first so apt has a dependency to pull), configured against a BIND on the host's loopback
 * with a stand-in collector, enabled, measured (systemd-analyze security, idle RSS/CPU), upgraded
 * to a newer build (+test1), removed and purged; the .rpm is inspected and installed into a
 * scratch root (scripts/package-tests/rpm-check). Figures: console and
 * dist/packages/test-measurements.json (docs/PERFORMANCE.md, "Packages").
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Witness } from '../../src/lease/witness.js';
import { waitWitness, witnessOf } from '../agent/harness.js';
import { agentConfig, STANDIN_BIN, STANDIN_UNIT } from '../fixtures/agent-in-container.js';
import { freePort, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { bootContainer, type Container } from '../fixtures/nspawn.js';
import { ensurePackages, installDeb, stageDeb, type Packages } from './deb.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SITES = { primary: '127.0.0.45', dr: '127.0.0.46' };
const UNIT = 'failover-agent@dr.service';
const MAX_EXPOSURE = 1.5;
const IDLE_SECONDS = 30;

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
let debV1: string;
let debV2: string;
let srv: DnsServerFixture;
let witness: Witness;
let c: Container;
let httpPort: number;
const measured: Record<string, unknown> = {};

async function sh(cmd: string, timeoutMs = 60_000, input?: string): Promise<{ code: number; out: string }> {
  const r = await c.exec(['sh', '-c', cmd], { timeoutMs, input });
  return { code: r.code, out: r.stdout + r.stderr };
}
async function must(cmd: string, timeoutMs = 60_000, input?: string): Promise<string> {
  const r = await sh(cmd, timeoutMs, input);
  if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}):\n${r.out}`);
  return r.out;
}
const prop = async (unit: string, p: string): Promise<string> => (await sh(`systemctl show -p ${p} --value ${unit}`)).out.trim();

/** files on the container's root file system, less the places that change by themselves */
const SNAPSHOT =
  'find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp ' +
  '-o -path /var/log -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/lib/systemd ' +
  '-o -path /root/pkgs \\) -prune -o -print | LC_ALL=C sort';
let before: Set<string>;

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
  const info = buildInfo(path.dirname(v1.deb));
  measured.build = {
    reused: v1.reused,
    build_seconds: Number(info.build_seconds),
    deb_bytes: fs.statSync(v1.deb).size,
    rpm_bytes: fs.statSync(v1.rpm).size,
  };
  console.log(`packages: ${v1.deb} (${fs.statSync(v1.deb).size} B), ${v1.rpm} (${fs.statSync(v1.rpm).size} B); built in ${info.build_seconds}s${v1.reused ? ' (reused)' : ''}`);

  srv = await startServer('bind');
  witness = witnessOf(srv);
  await witness.init(await witness.read(), SITES, Date.now() / 1000, false);
  httpPort = await freePort();
  c = await bootContainer({
    name: 'fa-packages',
    setup: async (root) => {
      debV1 = stageDeb(root, v1.deb);
      debV2 = stageDeb(root, v2.deb);
      fs.writeFileSync(path.join(root, 'etc/systemd/system/otelcol-contrib.service'), STANDIN_UNIT);
      fs.writeFileSync(path.join(root, 'usr/local/bin/otelcol-standin'), STANDIN_BIN, { mode: 0o755 });
    },
  });
  // A dependency for apt to pull: polkitd (Recommends) is in the cached root; take it out.
  await must('DEBIAN_FRONTEND=noninteractive apt-get purge -y -q polkitd', 120_000);
  before = new Set((await must(SNAPSHOT)).split('\n'));
}, 900_000);

afterAll(async () => {
  await c?.stop();
  await srv?.stop();
  if (Object.keys(measured).length) {
    const out = path.join(REPO, 'dist/packages/test-measurements.json');
    fs.writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), ...measured }, null, 2) + '\n');
    console.log(`measurements (${out}):\n${JSON.stringify(measured, null, 2)}`);
  }
});

describe('the .deb in a clean booted bookworm', { timeout: 180_000 }, () => {
  it('apt-get install ./failover-agent_*.deb pulls its dependencies and creates the user; nothing is enabled', async () => {
    // The root's package lists are from when it was built: refresh them (Debian's mirror).
    await must('apt-get update -q', 180_000);
    const t0 = performance.now();
    const out = await installDeb(c, debV1);
    measured.apt_install_seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
    const newPkgs = /The following NEW packages will be installed:\n((?: .*\n)+)/.exec(out)?.[1].trim().split(/\s+/) ?? [];
    expect(newPkgs, out).toContain('failover-agent');
    expect(newPkgs, out).toContain('polkitd');
    expect(await must("dpkg-query -W -f '${Status} ${Version}' failover-agent")).toBe('install ok installed 0.1.0');
    expect(await must("dpkg-query -W -f '${Status}' polkitd")).toBe('install ok installed');
    expect(await must('getent passwd failover-agent')).toMatch(/^failover-agent:x:\d+:\d+:failover-agent service:\/var\/lib\/failover-agent:\/usr\/sbin\/nologin/);
    const files = (await must('dpkg -L failover-agent')).split('\n');
    for (const f of [
      '/usr/lib/failover-agent/agent.js',
      '/usr/lib/failover-agent/failoverctl.js',
      '/usr/lib/failover-agent/node_modules/sd-notify/build/Release/notify.node',
      '/usr/lib/failover-agent/node_modules/bindings/bindings.js',
      '/usr/lib/failover-agent/node_modules/file-uri-to-path/index.js',
      '/usr/bin/failoverctl',
      '/lib/systemd/system/failover-agent@.service',
      '/lib/systemd/system/failover-agent.target',
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
    expect((await must('cat /var/lib/dpkg/info/failover-agent.conffiles')).trim().split('\n').sort()).toEqual([
      '/etc/failover-agent/dr.toml.example',
      '/etc/failover-agent/primary.toml.example',
    ]);
    // Never auto-enabled or started: the template is skipped, the target is static.
    expect((await sh(`systemctl is-enabled ${UNIT}`)).out.trim()).toBe('disabled');
    expect((await sh('systemctl is-enabled failover-agent.target')).out.trim()).toBe('static');
    expect((await sh('systemctl is-active failover-agent.target')).out.trim()).toBe('inactive');
    expect((await sh('systemctl list-units --all --plain --no-legend "failover-agent@*"')).out.trim()).toBe('');
    // The addon loads into the system Node (the ABI it was built for).
    expect(await must(`node -e 'console.log(typeof require("/usr/lib/failover-agent/node_modules/sd-notify").sendState)'`)).toBe('function\n');
  });

  it('systemctl enable --now failover-agent@dr runs it as failover-agent; journalctl shows the events', async () => {
    const key = '/etc/failover-agent/tsig.key';
    await must(`cat > ${key} && chown root:failover-agent ${key} && chmod 0640 ${key}`, 10_000, fs.readFileSync(srv.key.file, 'utf8'));
    await must('cat > /etc/failover-agent/dr.toml', 10_000, agentConfig(srv, { role: 'dr', sites: SITES, httpPort }));
    expect((await sh('failoverctl --instance dr check-config')).code).toBe(0);
    const t0 = performance.now();
    await must(`systemctl enable --now ${UNIT}`);
    measured.start_ms = Math.round(performance.now() - t0);
    expect(await prop(UNIT, 'ActiveState')).toBe('active');
    expect(await prop(UNIT, 'User')).toBe('failover-agent');
    expect(await prop('failover-agent.target', 'ActiveState')).toBe('active');
    expect(await prop(UNIT, 'StatusText')).toMatch(/^role=dr state=/);
    // The primary never renews here: the DR takes over once the lease has run out, and starts
    // the collector through D-Bus as the service user (the packaged polkit rule).
    await waitWitness(witness, (s) => s.addresses[0] === SITES.dr, 45_000, 250);
    await c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 20_000);
    const log = (
      await c.waitFor(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager'], (r) => /event=collector_start unit=otelcol-contrib\.service/.test(r.stdout), 20_000)
    ).stdout;
    expect(log).toMatch(/event=ready/);
    expect(log).toMatch(/event=takeover/);
    const st = JSON.parse(await must('failoverctl --instance dr --json status')) as { role: string; active: boolean };
    expect(st.role).toBe('dr');
  });

  it(`systemd-analyze security ${UNIT}: overall exposure <= ${MAX_EXPOSURE}`, async () => {
    const out = (await sh(`systemd-analyze security --no-pager ${UNIT}`)).out;
    const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(out);
    expect(m, out).not.toBeNull();
    const score = Number(m![1]);
    measured.security_exposure = score;
    fs.writeFileSync(path.join(REPO, 'dist/packages/systemd-analyze-security.txt'), out);
    console.log(`systemd-analyze security ${UNIT}: ${score}`);
    expect(score).toBeLessThanOrEqual(MAX_EXPOSURE);
  });

  it('with the shipped IP allow-list example as a drop-in: exposure 1.0, and the agent still works', async () => {
    const dir = '/etc/systemd/system/failover-agent@dr.service.d';
    await must(`mkdir -p ${dir} && cp /usr/share/doc/failover-agent/examples/ip-allowlist.conf ${dir}/ && systemctl daemon-reload`);
    try {
      const out = (await sh(`systemd-analyze security --no-pager ${UNIT}`)).out;
      const score = Number(/Overall exposure level for \S+: (\d+\.\d+)/.exec(out)![1]);
      measured.security_exposure_with_ip_allowlist = score;
      expect(score).toBeLessThanOrEqual(1.0);
      const pid = await prop(UNIT, 'MainPID');
      await must(`systemctl restart ${UNIT}`);
      expect(await prop(UNIT, 'MainPID')).not.toBe(pid);
      // everything in this test is on 127.0.0.0/8 ("localhost" in the example)
      await c.waitFor(['systemctl', 'show', '-p', 'StatusText', '--value', UNIT], (r) => /^role=dr state=active/.test(r.stdout), 30_000);
    } finally {
      await must(`rm -r ${dir} && systemctl daemon-reload && systemctl restart ${UNIT}`);
    }
    await c.waitFor(['systemctl', 'show', '-p', 'StatusText', '--value', UNIT], (r) => /^role=dr state=active/.test(r.stdout), 30_000);
  });

  it(`idle footprint over ${IDLE_SECONDS} s (RSS, CPU), with the default intervals`, async () => {
    // The shipped defaults (lease ttl 30s, renew every 10s, max_skew 5s, health every 10s,
    // collector every 5s) instead of the test's fast ones; restored afterwards.
    const fast = agentConfig(srv, { role: 'dr', sites: SITES, httpPort });
    const defaults = fast
      .replace(/^ttl = .*$/m, 'ttl = "30s"')
      .replace(/^renew_interval = .*$/m, 'renew_interval = "10s"')
      .replace(/^max_skew = .*$/m, 'max_skew = "5s"')
      .replace(/^interval = "1s"$/m, 'interval = "10s"')
      .replace(/^interval = "2s"$/m, 'interval = "5s"');
    expect(defaults).not.toBe(fast);
    await must('cat > /etc/failover-agent/dr.toml', 10_000, defaults);
    await must(`systemctl restart ${UNIT}`);
    await c.waitFor(['systemctl', 'show', '-p', 'StatusText', '--value', UNIT], (r) => /^role=dr state=active/.test(r.stdout), 60_000);
    await new Promise((r) => setTimeout(r, 5000)); // past the start-up work
    const pid = await prop(UNIT, 'MainPID');
    const hz = Number((await must('getconf CLK_TCK')).trim());
    // utime + stime (fields 14, 15 of /proc/PID/stat, clock ticks) and the status lines
    const sample = async () => {
      const stat = (await must(`cat /proc/${pid}/stat`)).trim();
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = await must(`cat /proc/${pid}/status`);
      const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
      return { t: performance.now(), ticks: Number(f[11]) + Number(f[12]), rss: kib('VmRSS'), anon: kib('RssAnon'), hwm: kib('VmHWM') };
    };
    const a = await sample();
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const b = await sample();
    expect(await prop(UNIT, 'MainPID')).toBe(pid);
    measured.idle = {
      seconds: Number(((b.t - a.t) / 1000).toFixed(1)),
      cpu_percent: Number(((((b.ticks - a.ticks) / hz) * 1000 / (b.t - a.t)) * 100).toFixed(2)),
      vmrss_kib: b.rss,
      rss_anon_kib: b.anon,
      vmhwm_kib: b.hwm,
      note: 'active DR, default intervals: lease renewed every 10 s, collector checked every 5 s',
    };
    console.log(`idle: ${JSON.stringify(measured.idle)}`);
    expect(b.rss).toBeGreaterThan(0);
    await must('cat > /etc/failover-agent/dr.toml', 10_000, fast);
    await must(`systemctl restart ${UNIT}`);
    await c.waitFor(['systemctl', 'show', '-p', 'StatusText', '--value', UNIT], (r) => /^role=dr state=active/.test(r.stdout), 60_000);
  }, 180_000);

  it('an upgrade restarts the running instance through the target and keeps the admin\'s files', async () => {
    const pid = await prop(UNIT, 'MainPID');
    await must("echo '# edited by the admin' >> /etc/failover-agent/dr.toml");
    await must("echo '# edited by the admin' >> /etc/failover-agent/dr.toml.example");
    await must('rm /etc/failover-agent/primary.toml.example');
    const since = (await must('date "+%Y-%m-%d %H:%M:%S"')).trim();
    const t0 = performance.now();
    // No --force-conf*: a conffile prompt would hit the closed stdin and fail the upgrade.
    await installDeb(c, debV2);
    measured.apt_upgrade_seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
    expect(await must("dpkg-query -W -f '${Version}' failover-agent")).toBe('0.1.0+test1');
    const newPid = await prop(UNIT, 'MainPID');
    expect(newPid).not.toBe(pid);
    expect(newPid).not.toBe('0');
    await c.waitFor(['systemctl', 'is-active', UNIT], (r) => r.stdout.trim() === 'active', 60_000);
    // through the target: it was restarted, and the instance with it (PartOf=)
    const journal = await must(`journalctl --since '${since}' -o cat --no-pager`);
    expect(journal).toMatch(/Stopp(ing|ed) failover-agent instances|Stopped target failover-agent/);
    expect(await must('tail -1 /etc/failover-agent/dr.toml')).toBe('# edited by the admin\n');
    // dpkg's conffile rules: the admin's change stays (the packaged file did not change), a
    // deleted conffile stays deleted.
    expect(await must('tail -1 /etc/failover-agent/dr.toml.example')).toBe('# edited by the admin\n');
    expect((await sh('test -e /etc/failover-agent/primary.toml.example')).code).not.toBe(0);
    // the upgraded agent works
    await c.waitFor(['systemctl', 'show', '-p', 'StatusText', '--value', UNIT], (r) => /^role=dr state=active/.test(r.stdout), 30_000);
  });

  it('apt-get remove stops the instance and keeps config and state; purge leaves only the admin\'s files', async () => {
    await must('DEBIAN_FRONTEND=noninteractive apt-get remove -y -q failover-agent', 120_000);
    expect(await prop(UNIT, 'ActiveState')).toMatch(/inactive|failed/);
    expect(await must("dpkg-query -W -f '${Status}' failover-agent")).toBe('deinstall ok config-files');
    expect((await sh('test -e /usr/lib/failover-agent')).code).not.toBe(0);
    expect((await sh('test -d /var/lib/failover-agent/dr')).code).toBe(0);
    expect((await sh('test -f /etc/failover-agent/dr.toml.example')).code).toBe(0);

    await must('DEBIAN_FRONTEND=noninteractive apt-get purge -y -q failover-agent', 120_000);
    expect((await sh('dpkg-query -W -f "${Status}" failover-agent')).out).not.toMatch(/installed|config-files/);
    expect((await sh('dpkg -L failover-agent')).code).not.toBe(0);
    expect((await sh('test -e /var/lib/failover-agent')).code).not.toBe(0);
    expect((await sh('test -e /run/failover-agent')).code).not.toBe(0);
    expect((await sh('ls /etc/systemd/system/multi-user.target.wants/')).out).not.toMatch(/failover-agent/);
    // What the admin created stays (not the package's files: docs/PACKAGING.md), and so does the
    // system user (Debian does not remove system users).
    expect((await must('ls -A /etc/failover-agent')).trim().split('\n').sort()).toEqual(['dr.toml', 'tsig.key']);
    expect((await sh('getent passwd failover-agent')).code).toBe(0);
    // Nothing else: every path that is new since before the install belongs to polkitd (pulled
    // in as a dependency and still installed: its files and what its postinst registers) or is
    // the admin's.
    const polkitd = new Set((await must('dpkg -L polkitd')).split('\n'));
    const after = (await must(SNAPSHOT)).split('\n');
    const added = after.filter((p) => p && !before.has(p) && !polkitd.has(p));
    expect(added.filter((p) => !/polkit/.test(p) || /failover/.test(p))).toEqual([
      '/etc/failover-agent',
      '/etc/failover-agent/dr.toml',
      '/etc/failover-agent/tsig.key',
    ]);
  });
});

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
      '/usr/lib/failover-agent/node_modules/sd-notify/build/Release/notify.node',
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
    expect(req).toMatch(/^nodejs\(abi18\)$/m);
    expect(req).toMatch(/^libsystemd\.so\.0\(\)\(64bit\)$/m);
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
