/**
 * Everything failoverctl --help reaches (each command, each of its options, the global options)
 * and what the man pages promise besides (exit codes, signals, the agent's options) names the
 * test that exercises it. The table below is that map: a command or option that --help shows
 * and the table does not name fails here (write its test, then its row), and so does a row
 * whose test is gone or no longer uses what the row says.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cli } from './in-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Evidence {
  /** test file, from the repository root */
  file: string;
  /** the title (or a unique part of it) of the test that exercises it */
  test: string;
  /** text the test's body contains when it does (e.g. the argument list it runs) */
  uses: string[];
}

const e = (file: string, test: string, ...uses: string[]): Evidence => ({ file: `test/${file}`, test, uses });

/** failoverctl --help: "--global", "command" and "command --option". */
const HELP: Record<string, Evidence[]> = {
  '--config': [e('cli/failoverctl-dns.int.test.ts', 'check-config accepts the file and names the key', "'--config', config, 'check-config'")],
  '--instance': [
    e('cli/failoverctl.test.ts', 'means NAME.toml in the config directory', "'--instance', 'typo'"),
    e('collector/agent-systemd.int.test.ts', 'a collector whose binary is missing', 'failoverctl --instance primary status'),
  ],
  '--json': [e('cli/failoverctl-dns.int.test.ts', 'dns --json matches what dig reads', "'--json', 'dns'")],
  '--socket': [e('agent/failover.int.test.ts', '--socket names the control socket', "'--socket', socket")],
  '--help': [e('man/man.test.ts', 'names every command and option the program has', 'await cli()')],
  '--version': [e('cli/version.test.ts', '%s --version prints the package version', "'--version'")],
  'check-config': [e('cli/failoverctl-dns.int.test.ts', 'a config error exits 78 naming file, key and line', "'check-config'")],
  status: [e('agent/control.int.test.ts', 'status exits 0 for the active primary and for the monitoring DR', "['status']")],
  failback: [e('agent/failover.int.test.ts', 'failoverctl failback moves the record back', "ctl(primary, ['failback'])")],
  'failback --force': [
    e('agent/failback-gate.int.test.ts', '--force moves past it', "ctl(['failback', '--force'])"),
    e('collector/agent-systemd.int.test.ts', 'a collector whose binary is missing', 'failback --force'),
  ],
  'failback --dry-run': [
    e('agent/failback-gate.int.test.ts', 'failback is refused with the gate reason', "'failback', '--dry-run'"),
    e('agent/failover.int.test.ts', 'failoverctl failback moves the record back', "'failback', '--dry-run'"),
    e('collector/agent-systemd.int.test.ts', 'a collector whose binary is missing', 'failback --dry-run'),
  ],
  switchover: [e('agent/control.int.test.ts', 'the same check sees a well-formed switchover', "['switchover']")],
  'switchover --force': [e('collector/agent-systemd.int.test.ts', 'a collector whose binary is missing', 'switchover --force')],
  'switchover --dry-run': [
    e('agent/failover.int.test.ts', 'switchover --dry-run and switchover through the agent', "['switchover', '--dry-run']"),
    e('collector/agent-systemd.int.test.ts', 'a collector whose binary is missing', 'switchover --dry-run'),
  ],
  sync: [e('agent/failback-gate.int.test.ts', 'sync and status say so', "'--json', 'sync'")],
  reload: [
    e('agent/control.int.test.ts', 'reload: an invalid file or a restart-only key fails', "['reload']"),
    e('collector/agent-systemd.int.test.ts', 'systemctl reload fails when the agent refuses', 'systemctl reload'),
  ],
  dns: [e('cli/failoverctl-dns.int.test.ts', 'dns --json matches what dig reads', "'dns'")],
  'dns --tcp': [e('cli/failoverctl-dns.int.test.ts', 'dns --json matches what dig reads', "'dns', '--tcp'")],
  init: [e('cli/failoverctl-dns.int.test.ts', 'init creates the record and the lease once', "'init'")],
  'init --force': [e('cli/failoverctl-dns.int.test.ts', 'init creates the record and the lease once', "'init', '--force'")],
  setup: [
    e('cli/setup.test.ts', 'writes both files and the key', 'setup(['),
    e('cli/setup-pty.int.test.ts', 'every answer typed, VM URLs included', 'wizard('),
  ],
  ...Object.fromEntries(
    ['--record', '--zone', '--primary-ip', '--dr-ip', '--dns-server'].map((f) => [`setup ${f}`, [e('cli/setup.test.ts', 'writes both files and the key', '...FLAGS', `'${f}'`)]]),
  ),
  'setup --primary-vm': [e('cli/setup.test.ts', 'writes both files and the key', "'--primary-vm'")],
  'setup --dr-vm': [e('cli/setup.test.ts', 'writes both files and the key', "'--dr-vm'")],
  'setup --webhook': [e('cli/setup.test.ts', 'writes both files and the key', "'--webhook'")],
  'setup --collector': [e('cli/setup.test.ts', '--key-file and --collector none are what the files say', "'--collector', 'none'")],
  'setup --http-port': [e('cli/setup.test.ts', '--key-file and --collector none are what the files say', "'--http-port', '9555'")],
  'setup --key-name': [e('cli/setup.test.ts', '--key-file and --collector none are what the files say', "'--key-name', 'site-key'")],
  'setup --key-file': [e('cli/setup.test.ts', '--key-file and --collector none are what the files say', "'--key-file', key")],
  'setup --out': [e('cli/setup.int.test.ts', 'check-config passes, init creates the record, and an agent pair runs', "'setup', '--out', dir")],
  'setup --force': [e('cli/setup.test.ts', 'never overwrites without --force', "'--force'")],
  'setup --handover': [e('cli/setup.test.ts', '--handover no, --probe, --handover-hold are what the files say', "'--handover', 'no'")],
  'setup --probe': [e('cli/setup.test.ts', '--handover no, --probe, --handover-hold are what the files say', "'--probe'")],
  'setup --handover-hold': [e('cli/setup.test.ts', '--handover no, --probe, --handover-hold are what the files say', "'--handover-hold', '1h'")],
  'setup --polkit-dir': [e('cli/setup-polkit.test.ts', 'the rule is printed instead', "'--polkit-dir'")],
  'setup --auth': [e('cli/setup-gss.test.ts', 'bad answers: exit 78 naming each flag', "'--auth', 'gss-tsig'", "'--auth', 'kerberos'")],
  'setup --principal': [e('cli/setup-gss.test.ts', 'bad answers: exit 78 naming each flag', "'--principal', 'failover-agent'")],
  'setup --keytab': [e('cli/setup-gss.test.ts', '--server-principal and --keytab are what the files say', "'--keytab', kt")],
  'setup --server-principal': [e('cli/setup-gss.test.ts', '--server-principal and --keytab are what the files say', "'--server-principal', 'DNS/dc1.example.com'")],
  pause: [
    e('cli/pause.int.test.ts', 'pause --reason writes the control record at the witness', "'pause'"),
    e('drill/handover.int.test.ts', 'then the agent of the primary stopped', "'dr', 'pause"),
  ],
  'pause --reason': [e('cli/pause.int.test.ts', 'pause --reason writes the control record at the witness', "'--reason', 'core switch upgrade'")],
  'pause --for': [e('cli/pause.int.test.ts', 'pause --for ends by itself', "'--for', '2s'")],
  resume: [
    e('cli/pause.int.test.ts', 'resume removes the pause', "'resume'"),
    e('drill/handover.int.test.ts', 'then the agent of the primary stopped', "'primary', 'resume'"),
  ],
  'import-env': [e('cli/failoverctl.test.ts', '<file> [more..] are merged', "'import-env', main, more")],
  'import-env --role': [
    e('cli/failoverctl.test.ts', '<file> [more..] are merged, --role decides', "'--role', 'dr'"),
    e('cli/failoverctl.test.ts', '--role takes primary or dr only', "'--role', 'standby'"),
  ],
};

/** What the man pages promise beyond --help. */
const MAN: Record<string, Evidence[]> = {
  'failoverctl(1): status exits 0 fine in its role': [e('agent/control.int.test.ts', 'status exits 0 for the active primary and for the monitoring DR', 'toBe(StatusExit.FINE)')],
  'failoverctl(1): status exits 2 DNS unreadable': [e('agent/control.int.test.ts', 'status exits 2 while the agent cannot read DNS', 'toBe(StatusExit.DNS_UNREADABLE)')],
  'failoverctl(1): status exits 3 named but not active': [e('agent/control.int.test.ts', 'the newly named DR exits 3 until its lease counts', 'toBe(StatusExit.NOT_ACTIVE)')],
  'failoverctl(1): status exits 4 otherwise unhealthy': [e('collector/agent-systemd.int.test.ts', 'a collector whose binary is missing', 'toBe(4)')],
  'failoverctl(1): status exits 69 agent not running': [e('agent/failover.int.test.ts', 'with the agent down, failback runs directly', "expect(st.code).toBe(69)")],
  'failoverctl(1): failback/switchover with the agent down run directly against DNS': [
    e('agent/failover.int.test.ts', 'with the agent down, failback runs directly', 'executed directly'),
    e('agent/failback-gate.int.test.ts', 'with the agent down, failback reads the persisted gate', 'executed directly'),
  ],
  'failoverctl(1): with neither --config nor --instance, the only *.toml': [e('cli/failoverctl-dns.int.test.ts', 'the only *.toml in the config dir is used', "ctl(['check-config']")],
  'failoverctl(1): exit 69 server unreachable': [e('cli/failoverctl-dns.int.test.ts', 'server unreachable: exit 69', 'toBe(69)')],
  'failoverctl(1): exit 77 TSIG rejected': [e('cli/failoverctl-dns.int.test.ts', 'a key the server does not know: exit 77', 'toBe(77)')],
  'failoverctl(1): exit 77 key file mode': [e('cli/failoverctl-dns.int.test.ts', 'a world-readable key file exits 77', 'toBe(77)')],
  'failoverctl(1): exit 77 a record another account owns (check-config, init)': [
    e('dns/samba-ad.int.test.ts', 'quirk 5: a second account may not change what the first created', "'check-config'", "'init', '--force'", 'toBe(77)'),
  ],
  'failoverctl(1): init creates the control record too with GSS-TSIG': [e('dns/samba-ad.int.test.ts', 'check-config and failoverctl init against the DC', "'init'", "['v=1 rev n=1']")],
  'failoverctl(1): exit 78 configuration error': [e('cli/failoverctl-dns.int.test.ts', 'a config error exits 78 naming file, key and line', 'toBe(78)')],
  'failover-agent(8): --config': [e('agent/failover.int.test.ts', 'the primary renews its lease; the DR monitors', 'status(primary)')],
  'failover-agent(8): --instance (the unit)': [e('collector/agent-systemd.int.test.ts', 'systemctl start returns only after READY', 'systemctl start')],
  'failover-agent(8): SIGTERM': [e('agent/failover.int.test.ts', 'SIGTERM stops cleanly with exit 0', "signal('SIGTERM')")],
  'failover-agent(8): SIGINT': [e('agent/failover.int.test.ts', 'SIGINT stops cleanly too', "signal('SIGINT')")],
  'failover-agent(8): SIGHUP': [e('agent/failover.int.test.ts', 'SIGHUP with a broken config keeps the old one', "signal('SIGHUP')")],
  'failover-agent(8): signals while starting': [e('agent/failover.int.test.ts', 'an agent still starting', "signal('SIGHUP')", "signal('SIGTERM')")],
  'failover-agent(8): systemctl reload': [e('collector/agent-systemd.int.test.ts', 'systemctl reload applies a valid change without a restart', 'systemctl reload')],
  'failover-agent(8): RELOAD keys': [e('man/man.test.ts', 'lists exactly the keys a reload applies', 'LIVE_KEYS')],
  'failover-agent(8): /healthz and /metrics': [e('agent/failover.int.test.ts', 'the primary renews its lease; the DR monitors', '/healthz', '/metrics')],
  'failover-agent(8): exit 78, no restart': [e('collector/agent-systemd.int.test.ts', 'a configuration error: exit 78 and no restart loop', "'78'")],
  'failover-agent(8): a missing NAME.toml fails the start': [e('collector/agent-systemd.int.test.ts', 'a missing instance configuration fails systemctl start loudly', 'typo\\.toml: file not found')],
  'failover-agent(8): exit 77 key file mode': [e('agent/failover.int.test.ts', 'a key file others may read 77', 'toBe(77)')],
  'failover-agent(8): control socket mode 0660': [e('control/control.test.ts', 'mode 0660 by default', '0o660')],
  'failover-agent(8): watchdog': [e('collector/agent-systemd.int.test.ts', 'kill -STOP: the watchdog fires', 'atchdog timeout')],
  'failover-agent.toml(5): keys are the schema': [e('man/man.test.ts', 'the example configurations have exactly the schema keys', 'KNOWN_KEYS')],
  'failover-agent.toml(5): defaults are the schema': [e('man/man.test.ts', 'each documented default is what the schema fills in', 'checkConfig(')],
};

/** The body of the test whose title contains `title` (up to the next test of the file). */
function testBody(text: string, title: string): string | undefined {
  const at = text.indexOf(title);
  // The title is in the first argument of a test on its line: it('…, test('…, or it.each([...])('….
  const line = text.slice(text.lastIndexOf('\n', at) + 1, at);
  if (at < 0 || !/^\s*(?:(?:it|test)(?:\.each\(.*?\))?|\]\))\(\s*([`'"])(?:(?!\1).)*$/.test(line)) return undefined;
  const next = text.slice(at).search(/\n\s*(?:it|test)(?:\.each)?\(/);
  return next < 0 ? text.slice(at) : text.slice(at, at + next);
}

describe('every command and option failoverctl --help shows has a test that runs it', () => {
  it('the table names exactly what --help shows', async () => {
    const { global, commands } = await cli();
    const reachable = [...global, ...[...commands].flatMap(([cmd, opts]) => [cmd, ...opts.map((o) => `${cmd} ${o}`)])];
    expect(Object.keys(HELP).sort()).toEqual(reachable.sort());
  });

  it.each(Object.entries({ ...HELP, ...MAN }))('%s', (_what, evidence) => {
    expect(evidence.length).toBeGreaterThan(0);
    for (const ev of evidence) {
      const text = fs.readFileSync(path.join(ROOT, ev.file), 'utf8');
      const body = testBody(text, ev.test);
      expect(body, `${ev.file}: no test titled "…${ev.test}…"`).toBeDefined();
      // A constant the test spreads (setup's FLAGS) lives outside its body: look in the file.
      for (const u of ev.uses) expect(u.startsWith("'--") && ev.uses.includes('...FLAGS') ? text : body, `${ev.file} "${ev.test}" uses ${u}`).toContain(u);
    }
  });
});
