#!/usr/bin/env node
// The devices of the fault world: one HTTP /metrics target per device (one port each, so each is
// its own `instance`), run inside the devices namespace. Every answer carries, per scraper
// address, the running count of that scraper's scrapes of this device (`device_scrape_seq`), and
// every scrape is logged as `<wallMs> <device> <scraper address> <seq>`: the ground truth the
// checker compares the VictoriaMetrics data with (a missing seq is a lost sample).
//
//   node devices.mjs --address 198.18.4.2 --ports 9101,9102 --log /tmp/scrapes.log
// Prints `ready` once every port listens; exits on SIGTERM after flushing the log.
import http from 'node:http';
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { address: { type: 'string' }, ports: { type: 'string' }, log: { type: 'string' } } });
if (!values.address || !values.ports || !values.log) {
  console.error('usage: devices.mjs --address A --ports P1,P2,... --log FILE');
  process.exit(2);
}
const log = fs.createWriteStream(values.log, { flags: 'a' });
const servers = [];
let pending = 0;
for (const port of values.ports.split(',').map(Number)) {
  const device = `dev${port}`;
  const seq = new Map();
  const server = http.createServer((req, res) => {
    const from = req.socket.remoteAddress ?? '?';
    const n = (seq.get(from) ?? 0) + 1;
    seq.set(from, n);
    log.write(`${Date.now()} ${device} ${from} ${n}\n`);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(`# TYPE device_scrape_seq gauge\ndevice_scrape_seq{device="${device}"} ${n}\n`);
  });
  server.keepAliveTimeout = 65_000;
  pending++;
  server.listen(port, values.address, () => {
    if (--pending === 0) console.log('ready');
  });
  servers.push(server);
}
process.on('SIGTERM', () => {
  for (const s of servers) s.close();
  log.end(() => process.exit(0));
});
