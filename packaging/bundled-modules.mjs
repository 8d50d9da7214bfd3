// Lists the npm modules esbuild put into the bundles (from dist/bundle-inputs.txt, the input files
// scripts/build.mjs records from esbuild's metafile), with version and license, for
// debian/copyright and the RPM's License: tag. Usage: node bundled-modules.mjs NODE_MODULES_DIR
// BUNDLE_INPUTS_TXT. Exits 1 when a module's license is not one of KNOWN (then debian/copyright and
// the spec's License: need a new entry, and this list too), or when the list finds no module.
import fs from 'node:fs';
import path from 'node:path';

const KNOWN = new Set(['MIT', 'ISC', 'Apache-2.0', 'BSD-3-Clause', 'BlueOak-1.0.0']);
// package.json files that carry no SPDX license field; checked against their LICENSE files.
const FIXUPS = { '@nornagon/put': 'MIT', jsbi: 'Apache-2.0', 'map-stream': 'MIT', 'pause-stream': 'MIT' /* dual MIT or Apache-2.0 */ };

const [nm, inputsFile] = process.argv.slice(2);
const names = new Set();
for (const m of fs.readFileSync(inputsFile, 'utf8').matchAll(/(?:^|\/)node_modules\/((?:@[^/\n]+\/)?[^/\n]+)\//gm)) names.add(m[1]);
if (names.size === 0) {
  console.error(`bundled-modules: no npm module in ${inputsFile}`);
  process.exit(1);
}
let bad = 0;
const rows = [...names].sort().map((name) => {
  const pj = JSON.parse(fs.readFileSync(path.join(nm, name, 'package.json'), 'utf8'));
  const lic = FIXUPS[name] ?? (typeof pj.license === 'string' ? pj.license : '?');
  if (!KNOWN.has(lic)) {
    console.error(`bundled-modules: ${name}: license ${JSON.stringify(pj.license ?? pj.licenses)} not in the known list`);
    bad++;
  }
  return `${name} ${pj.version} ${lic}`;
});
process.stdout.write(
  '# npm modules bundled into /usr/lib/failover-agent/{agent,failoverctl}.js: name version license\n' +
    rows.join('\n') + '\n',
);
process.exit(bad ? 1 : 0);
