import { describe, expect, it } from 'vitest';
import {
  RSYSLOG_REBIND_INTERVAL,
  SENDER_SYSCTLS,
  SYSLOG_NG_RELOAD_S,
  rsyslogAction,
  senderSnippets,
  senderSysctls,
  syslogNgDestination,
} from '../../src/cli/senders.js';

describe('senderSnippets (docs/SENDERS.md; measured by test/senders/)', () => {
  const text = senderSnippets('syslog.example.com');

  it('holds the rsyslog action the senders test runs, for the record, port 514 by default', () => {
    expect(text).toContain(`*.* ${rsyslogAction('syslog.example.com').replace(/\n/g, '\n    ')}`);
    expect(text).toContain('target="syslog.example.com" port="514" protocol="tcp"');
    expect(text).toContain(`RebindInterval="${RSYSLOG_REBIND_INTERVAL}"`);
    expect(text).toContain('queue.type="LinkedList"');
    expect(text).toContain('action.resumeRetryCount="-1" action.resumeInterval="1"');
    expect(text).toContain('/etc/rsyslog.d/');
  });

  it('holds the syslog-ng destination the senders test runs, its log path and the reload timer', () => {
    expect(text).toContain(syslogNgDestination('syslog.example.com'));
    expect(text).toContain('network("syslog.example.com" port(514) transport("tcp")');
    expect(text).toContain('keep-alive(no) time-reopen(1)');
    expect(text).toContain('log { source(s_src); destination(d_failover); };');
    expect(text).toContain('ExecStart=/usr/sbin/syslog-ng-ctl reload');
    expect(text).toContain(`OnUnitActiveSec=${SYSLOG_NG_RELOAD_S}s`);
  });

  it('holds the sending host\'s sysctls', () => {
    expect(senderSysctls()).toBe('net.ipv4.tcp_syn_retries = 2\nnet.ipv4.tcp_retries2 = 5');
    for (const [k, v] of Object.entries(SENDER_SYSCTLS)) expect(text).toContain(`${k} = ${v}`);
    expect(text).toContain('/etc/sysctl.d/');
  });

  it('uses the port given, and is pure (same input, same text)', () => {
    const t = senderSnippets('logs.site.test.', 6514);
    expect(t).toContain('target="logs.site.test." port="6514"');
    expect(t).toContain('network("logs.site.test." port(6514)');
    expect(t).not.toContain('port="514"');
    expect(t).not.toContain('port(514)');
    expect(senderSnippets('syslog.example.com')).toBe(text);
  });

  it('every non-comment line is configuration: no line of the rsyslog part is left uncommented by accident', () => {
    const rsyslog = text.slice(text.indexOf('# --- rsyslog'), text.indexOf('# --- syslog-ng'));
    const conf = rsyslog.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    expect(conf[0]).toMatch(/^\*\.\* action\(type="omfwd"/);
    expect(conf.at(-1)).toMatch(/\)$/);
  });

  it('refuses what is not a host name or a port', () => {
    expect(() => senderSnippets('')).toThrow(/host name/);
    expect(() => senderSnippets('a b')).toThrow(/host name/);
    expect(() => senderSnippets('x"; drop')).toThrow(/host name/);
    expect(() => senderSnippets('syslog.example.com', 0)).toThrow(/port/);
    expect(() => senderSnippets('syslog.example.com', 70000)).toThrow(/port/);
    expect(() => senderSnippets('syslog.example.com', 1.5)).toThrow(/port/);
  });
});
