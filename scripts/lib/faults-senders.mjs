// The push senders' rows of the fault matrix (test/faults/push.ts; docs/SENDERS.md), added to what
// scripts/faults-report.mjs rendered: into bench/results/faults.json (`cases`, rows with
// "sender") and docs/RELIABILITY.md (a "Push senders" section before the delayer's). Run by
// scripts/faults after faults-report.mjs:
//   node scripts/lib/faults-senders.mjs RAW.json [COMMAND]
// COMMAND: what produced RAW.json, when it is not the matrix of the rest of the page (a few cases
// run with -t).
import fs from 'node:fs';

const [raw, command] = process.argv.slice(2);
const r = JSON.parse(fs.readFileSync(raw, 'utf8'));
const senders = (r.senders ?? []).map((s) => ({
  name: s.name,
  system: s.system,
  sender: s.sender,
  documented: s.documented,
  pass: s.pass,
  follow_s: s.follow_s,
  followed: s.followed,
  lines_lost: s.lines_lost,
  lines_to_inactive: s.lines_to_inactive,
  sent_to_dead_before_move: s.sent_to_dead_before_move,
}));
if (senders.length === 0) {
  console.log('faults: no push sender rows in the results');
  process.exit(0);
}

const jsonFile = 'bench/results/faults.json';
const j = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
j.cases = [...(j.cases ?? []).filter((c) => c.sender === undefined), ...senders];
fs.writeFileSync(jsonFile, JSON.stringify(j, null, 1) + '\n');

const f = (v) => (v === null || v === undefined ? '–' : String(v));
const follow = (s) => (s.followed === false ? 'not in the window' : f(s.follow_s));
const verdict = (s) => (s.pass === null ? 'measured' : s.pass ? 'pass' : '**FAIL**');
const ttl = r.record_ttl_s ?? 1;
const rows = senders.map((s) => `| ${s.name} | ${s.sender} | ${verdict(s)} | ${follow(s)} | ${s.lines_lost}${s.sent_to_dead_before_move ? ` (${s.sent_to_dead_before_move} sent to the dead site before the move)` : ''} | ${s.lines_to_inactive} |`);
const when = new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
const by = command ? `Measured by \`${command}\` (${when}): the cases below only.\n\n` : '';
const section = `## Push senders: syslog sent to the record's name

${by}The same cases, seen by two rsyslog senders in the devices namespace forwarding one numbered line
every 100 ms over TCP to the record's NAME through a caching resolver (unbound): one with the
configuration docs/SENDERS.md documents, one with rsyslog's defaults (both with the documented
sysctls: they are per network namespace). Each site's collector unit runs a receiver that logs
every line (test/faults/push.ts). **follow** = the record's move at the witness → the first line at
the site it names (s; "–": the case does not move the record); **lost** = lines sent in the case
received by neither site; **to inactive** = lines a site received while the record named the
other site and its own agent said it was not active. Targets for the documented configuration: follow ≤ record_ttl (${ttl} s here) + 5 s,
lost ≤ the lines sent to a dead site before the move, to inactive 0; the default rows are
measurements. Every case starts from a reset that restarts both collectors, so a sender's row
also holds what that restart cost it (rsyslog's defaults drop lines for up to their 30 s resume
interval after a refused connection: "DR isolated" moves nothing, yet loses them).

| case | sender | result | follow s | lost | to inactive |
|---|---|---|---|---|---|
${rows.join('\n')}

`;
const mdFile = 'docs/RELIABILITY.md';
let md = fs.readFileSync(mdFile, 'utf8');
md = md.replace(/## Push senders: [\s\S]*?(?=## |$)/, '');
const at = md.indexOf('## The delayer');
md = at >= 0 ? md.slice(0, at) + section + md.slice(at) : `${md.trimEnd()}\n\n${section}`;
fs.writeFileSync(mdFile, md);
const doc = senders.filter((s) => s.documented);
console.log(`faults: push senders, documented ${doc.filter((s) => s.pass).length}/${doc.length} rows meet the targets; added to ${jsonFile} and ${mdFile}`);
