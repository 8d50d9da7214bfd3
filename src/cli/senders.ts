/**
 * The syslog sender configurations that follow the failover record across a failover
 * (docs/SENDERS.md; measured by test/senders/senders.int.test.ts, which runs exactly these
 * snippets). Pure: `failoverctl setup` prints `senderSnippets(record)`.
 *
 * rsyslog's omfwd and syslog-ng's network() both resolve the target name once and keep the
 * address; by default neither follows a moved record (docs/SENDERS.md has the measured figures).
 * What makes them follow:
 * - rsyslog: TCP, `RebindInterval` (a new connection, so a new lookup, every N messages), a queue
 *   and endless retries every second (a failed connection is retried, and the name looked up
 *   again, instead of dropping lines), and two kernel settings that bound how long a dead site's
 *   connection goes unnoticed.
 * - syslog-ng: `keep-alive(no)` (a reload closes the connection, so the next one looks the name
 *   up again), `time-reopen(1)` (after an error, reconnect in 1 s instead of 60 s), a reload every
 *   few seconds, and the same kernel settings.
 * - busybox syslogd (`-R host:port`) and inetutils syslogd (`@host`): UDP only, the name looked up
 *   once; nothing in their configuration makes them look it up again. `followRecordScript()`
 *   watches the name and runs a command when its address changes: a restart of busybox syslogd,
 *   a reload (SIGHUP, which re-reads syslog.conf and so looks the name up again) of inetutils
 *   syslogd.
 */

/** Messages between two rebinds (rsyslog counts messages, not time). */
export const RSYSLOG_REBIND_INTERVAL = 10;
/** Seconds between two `syslog-ng-ctl reload` (the timer in the snippet). */
export const SYSLOG_NG_RELOAD_S = 3;
/** Kernel settings for the sending host: connect to a dead site fails in ~7 s (default ~127 s);
 * a dead established connection is noticed in ~13 s (default ~15 min). */
export const SENDER_SYSCTLS: Readonly<Record<string, number>> = {
  'net.ipv4.tcp_syn_retries': 2,
  'net.ipv4.tcp_retries2': 5,
};

/** Seconds between two lookups of the record by `followRecordScript()`. */
export const FOLLOW_RECORD_INTERVAL_S = 1;

const quote = (s: string) => JSON.stringify(s);

function checkArgs(record: string, port: number): void {
  if (!/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/.test(record)) {
    throw new Error(`senderSnippets: not a host name: ${JSON.stringify(record)}`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`senderSnippets: not a port: ${String(port)}`);
  }
}

/** rsyslog's omfwd action (RainerScript) that follows `record`. */
export function rsyslogAction(record: string, port = 514): string {
  checkArgs(record, port);
  return [
    `action(type="omfwd" target=${quote(record)} port="${port}" protocol="tcp"`,
    `       RebindInterval="${RSYSLOG_REBIND_INTERVAL}"`,
    `       queue.type="LinkedList" queue.size="100000"`,
    `       action.resumeRetryCount="-1" action.resumeInterval="1")`,
  ].join('\n');
}

/** syslog-ng's destination that follows `record` (to be reloaded every SYSLOG_NG_RELOAD_S). */
export function syslogNgDestination(record: string, port = 514, name = 'd_failover'): string {
  checkArgs(record, port);
  return [
    `destination ${name} {`,
    `  network(${quote(record)} port(${port}) transport("tcp")`,
    `          keep-alive(no) time-reopen(1));`,
    `};`,
  ].join('\n');
}

/**
 * A POSIX sh script, `follow-record NAME INTERVAL_S COMMAND...`: looks NAME's IPv4 addresses up
 * (getent, so through the host's resolver and its cache) every INTERVAL_S seconds and runs COMMAND
 * each time they change. For senders that look the name up only when they start or reload
 * (busybox syslogd, inetutils syslogd): COMMAND restarts or reloads them.
 */
export function followRecordScript(): string {
  return `#!/bin/sh
# follow-record NAME INTERVAL_S COMMAND...: run COMMAND each time NAME's IPv4 addresses change
# (docs/SENDERS.md, "busybox syslogd and inetutils syslogd")
name=$1
interval=$2
shift 2
lookup() { getent ahostsv4 "$name" | awk '{ print $1 }' | sort -u | tr '\\n' ' '; }
last=$(lookup)
while sleep "$interval"; do
  now=$(lookup)
  if [ -n "$now" ] && [ "$now" != "$last" ]; then
    last=$now
    "$@"
  fi
done
`;
}

/** The /etc/sysctl.d lines for the sending host. */
export function senderSysctls(): string {
  return Object.entries(SENDER_SYSCTLS)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n');
}

/**
 * The documented rsyslog and syslog-ng configuration for `record` (the failover record), as text
 * an operator pastes: each file with its path and what each setting costs. docs/SENDERS.md.
 */
export function senderSnippets(record: string, port = 514): string {
  checkArgs(record, port);
  return `# Syslog senders that follow ${record} across a failover (docs/SENDERS.md).
# Measured with the record's TTL at 5 s: the first line reaches the new site within
# record_ttl + 5 s of the move, and nothing is lost but what the senders had already
# written to a site that was dead.

# --- rsyslog: /etc/rsyslog.d/60-failover.conf
# RebindInterval: a new connection, so a new lookup of the name, every ${RSYSLOG_REBIND_INTERVAL} messages
# (messages, not seconds: about one second of the host's usual rate); the queue and endless
# retries every second hold the lines while no site accepts them instead of dropping them.
*.* ${rsyslogAction(record, port).replace(/\n/g, '\n    ')}

# --- syslog-ng: /etc/syslog-ng/conf.d/60-failover.conf
# keep-alive(no): a reload closes the connection, so the next one looks the name up again;
# time-reopen(1): after an error, reconnect (and look up) after 1 s instead of 60 s.
${syslogNgDestination(record, port)}
log { source(s_src); destination(d_failover); };
# ... and reload it every ${SYSLOG_NG_RELOAD_S} s: /etc/systemd/system/syslog-ng-follow.service
#   [Service]
#   Type=oneshot
#   ExecStart=/usr/sbin/syslog-ng-ctl reload
# and /etc/systemd/system/syslog-ng-follow.timer (systemctl enable --now syslog-ng-follow.timer)
#   [Timer]
#   OnActiveSec=${SYSLOG_NG_RELOAD_S}s
#   OnUnitActiveSec=${SYSLOG_NG_RELOAD_S}s
#   AccuracySec=100ms
#   [Install]
#   WantedBy=timers.target

# --- both: /etc/sysctl.d/60-failover-sender.conf (then: sysctl --system)
# a connect to a dead site fails in ~7 s instead of ~127 s; a dead connection is noticed in
# ~13 s instead of ~15 min (these apply to every TCP connection of the host)
${senderSysctls()}

# --- busybox syslogd (-R ${record}:${port}) and inetutils syslogd (@${record} in
# /etc/syslog.conf; it sends to the syslog port of /etc/services only): they look the name up
# once. /usr/local/sbin/follow-record looks it up every ${FOLLOW_RECORD_INTERVAL_S} s and, when the address changes,
# restarts busybox syslogd (lines logged during the restart are lost) or reloads inetutils syslogd.
${followRecordScript().replace(/^/gm, '#   ').replace(/#   $/, '')}
# and /etc/systemd/system/follow-record.service (systemctl enable --now follow-record.service):
#   [Service]
#   ExecStart=/usr/local/sbin/follow-record ${record} ${FOLLOW_RECORD_INTERVAL_S} systemctl restart busybox-syslogd
#   # inetutils: ExecStart=/usr/local/sbin/follow-record ${record} ${FOLLOW_RECORD_INTERVAL_S} systemctl reload inetutils-syslogd
#   Restart=always
#   [Install]
#   WantedBy=multi-user.target
`;
}
