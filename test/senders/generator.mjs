#!/usr/bin/env node
// One numbered syslog line every --interval-ms (default 100) to a local sender's UDP input
// (--port on 127.0.0.1), at most --count lines; prints `<seq> <send ms since the epoch>` per line.
// Ends after --count lines, on SIGTERM, or when its stdout closes.
import dgram from 'node:dgram';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const port = Number(arg('port', '5140'));
const interval = Number(arg('interval-ms', '100'));
const count = Number(arg('count', '3000'));
const sock = dgram.createSocket('udp4');
const t0 = Date.now();
let seq = 0;
let stopped = false;
const tick = () => {
  if (stopped) return;
  seq += 1;
  const now = Date.now();
  sock.send(`<13>gen: seq=${seq}`, port, '127.0.0.1');
  process.stdout.write(`${seq} ${now}\n`);
  if (seq >= count) return finish();
  setTimeout(tick, Math.max(0, t0 + seq * interval - Date.now()));
};
const finish = () => {
  stopped = true;
  setTimeout(() => {
    sock.close();
    process.exit(0);
  }, 50);
};
process.on('SIGTERM', finish);
process.stdout.on('error', () => process.exit(0));
tick();
