// Renders the fault matrix's raw results (written by test/faults/matrix.int.test.ts when
// FAULTS_RESULTS is set) into bench/results/faults.json and docs/RELIABILITY.md.
//   node scripts/faults-report.mjs RAW.json "the command that ran it"
import fs from 'node:fs';

const [raw, command] = process.argv.slice(2);
const r = JSON.parse(fs.readFileSync(raw, 'utf8'));
const when = new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
const cases = r.cases.map((c) => ({
  name: c.name,
  system: c.system,
  pass: c.pass,
  failover_s: c.failover_s,
  gap_s: c.gap_s,
  overlap_s: c.overlap_s,
  samples_lost: c.samples_lost,
  split_brain_s: c.split_brain_s,
  fenced_s: c.fenced_s ?? null,
  ...(c.renewals_per_min !== undefined ? { renewals_per_min: c.renewals_per_min, longest_unrenewed_s: c.longest_unrenewed_s } : {}),
}));
fs.mkdirSync('bench/results', { recursive: true });
fs.writeFileSync('bench/results/faults.json', JSON.stringify({ date: when, command, timings: r.timings, soak_s: r.soak_s, cases }, null, 1) + '\n');

const f = (v) => (v === null || v === undefined ? '–' : String(v));
// keepalived rows right below the agent's row of the same case
const ordered = [];
for (const c of cases.filter((x) => x.system === 'failover-agent')) {
  ordered.push(c, ...cases.filter((k) => k.system === 'keepalived' && k.name === c.name));
}
// keepalived is measured against the agent's criteria, not required to meet them.
const verdict = (c) => (c.pass ? 'pass' : c.system === 'keepalived' ? `fails${c.split_brain_s ? ' (split brain)' : ''}` : '**FAIL**');
const rows = ordered.map((c) => `| ${c.name} | ${c.system} | ${verdict(c)} | ${f(c.failover_s)} | ${f(c.gap_s)} | ${f(c.overlap_s)} | ${f(c.samples_lost)} | ${f(c.split_brain_s)} | ${f(c.fenced_s)} |`);
const t = r.timings ?? {};
const stages = (r.delayer?.stages ?? []).map((s) => `| ${s.name} | ${s.each ? `${s.each.delayMs} ± ${s.each.jitterMs ?? 0} ms, ${s.each.lossPct ?? 0} % loss each way` : 'none'} | ${s.ping?.medianMs ?? '–'} | ${s.ping?.lossPct ?? '–'} | ${s.failures?.length ? s.failures.join('; ') : 'ok'} |`);
const md = `# Reliability: the fault matrix

What \`${command}\` measured, rendered on ${when} by scripts/faults-report.mjs (\`scripts/faults\`
runs the matrix and renders it; CI runs the same matrix with the degraded-WAN case at 120 s). Two sites and the witness on separate networks (network
namespaces joined by a routing WAN namespace, addresses from 198.18.0.0/15), each site a booted
Debian 13 container with the installed .deb, its own VictoriaMetrics and a collector unit
(Debian's vmagent scraping five device targets and writing to both sites' VictoriaMetrics, each
sample labelled with the scraping site); BIND as the witness. Faults are applied per link and per
direction in the WAN namespace (nftables drops; delay, jitter and loss by a userspace NFQUEUE
delayer, as this kernel has no netem). A checker samples from outside at 10 Hz: the record at the
witness, each agent's phase over its control socket, each collector's cgroup. README "Fault
matrix" explains each figure and case.

Figures: **failover** = fault → the record names the other site and its collector runs (s);
**gap** = the longest time no collector scraped a device beyond one scrape interval (s), from the
devices' own log; **overlap** = time both sites scraped the same device (s); **lost** = scrapes
(from the devices' log) missing from a site's VictoriaMetrics after the repair; **split brain** =
time both agents held a lease each believed valid (keepalived: both held the VIP) (s); **fenced** =
time either agent said \`fenced\` (its lease lost while the record names it: with \`self_fence\`, its
collector stopped) (s).
"–": does not apply. keepalived runs beside the agent in the same namespaces under the same faults
and is judged by the same criteria; its rows are measurements, not tests it must pass.

| case | system | result | failover s | gap s | overlap s | lost | split brain s | fenced s |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Agent timings: lease ttl ${t.ttl}, renew ${t.renew}, max_skew ${t.maxSkew}; health every
${t.healthInterval}, timeout ${t.healthTimeout}, ${t.healthFailures} failures; collector reconciled every
${t.collectorInterval}; DNS timeout ${t.dnsTimeout}, ${t.dnsRetries} retry; self_fence off unless the case
says on. keepalived: VRRP unicast, router id 51, priorities 100/90, advert_int 1 (the original's).

## The delayer, checked before the cases

ping site1 → witness with both directions impaired alike:

| stage | impairment | median RTT ms | loss % | verdict |
|---|---|---|---|---|
${stages.join('\n')}
`;
fs.writeFileSync('docs/RELIABILITY.md', md);
const agent = cases.filter((c) => c.system === 'failover-agent');
console.log(`faults: failover-agent ${agent.filter((c) => c.pass).length}/${agent.length} cases pass; wrote bench/results/faults.json and docs/RELIABILITY.md`);
