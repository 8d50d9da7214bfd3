/**
 * check-config says what this site does when its collector breaks, and warns (exit 0) where the
 * handover cannot work as written.
 */
import { describe, expect, it } from 'vitest';
import { handoverLine, handoverWarnings } from '../../src/cli/check-config.js';
import { checkConfig, type Config } from '../../src/config/schema.js';

function config(extra: string[] = [], role: 'primary' | 'dr' = 'dr'): Config {
  const raw: Record<string, unknown> = {
    role,
    sites: { primary: '10.10.10.10', dr: '10.20.20.20' },
    dns: { record: 'syslog.example.com', key_file: '/etc/failover-agent/tsig.key' },
  };
  for (const e of extra) {
    const [path, value] = e.split('=') as [string, string];
    const [section, key] = path.split('.') as [string, string];
    raw[section] = { ...(raw[section] as object), [key]: JSON.parse(value) };
  }
  const { config: c, problems } = checkConfig(raw, `/etc/failover-agent/${role}.toml`);
  expect(problems).toEqual([]);
  return c!;
}

describe('check-config: the collector handover', () => {
  it('one line with the rule as configured (defaults: the other agent on this listen port)', () => {
    expect(handoverLine(config())).toBe(
      'collector handover: on: otelcol-contrib.service is broken when failed, after more than 3 restart(s) within 30s; handed to the other site once http://10.10.10.10:9465/healthz answers ready; none within 30m of the last; paused and held at _control.syslog.example.com',
    );
    expect(handoverLine(config(['collector.probe="tcp://127.0.0.1:4317"']))).toMatch(/or when tcp:\/\/127.0.0.1:4317 has failed for 30s/);
    expect(handoverLine(config(['collector.handover=false']))).toMatch(/^collector handover: off/);
    expect(handoverLine(config(['collector.control="none"']))).toMatch(/^collector handover: none/);
    // a listener on another port: the default peer target follows it
    expect(config(['http.listen="10.20.20.20:9555"']).health.peer_targets).toEqual(['http://10.10.10.10:9555/healthz']);
  });

  it('warns when no target can report readiness, or a target names this site itself', () => {
    expect(handoverWarnings(config())).toEqual([]);
    expect(handoverWarnings(config(['health.peer_targets=["tcp://10.10.10.10:9465"]']))[0]!.message).toMatch(/only http\(s\) targets .* report readiness/);
    expect(handoverWarnings(config(['health.peer_targets=["http://10.20.20.20:9465/healthz"]']))[0]!.message).toMatch(/names this site's own address/);
    expect(handoverWarnings(config(['collector.handover=false', 'health.peer_targets=["tcp://10.10.10.10:9465"]']))).toEqual([]);
  });
});
