/**
 * failover-agent.toml(5) (packaging/man/failover-agent.toml.5) generated from the commented example configuration
 * (etc/failover-agent/dr.toml.example): each key's comment is its description, so the page, the
 * example and (through test/man/man.test.ts) the config schema cannot drift apart.
 * Regenerate: UPDATE_MAN=1 npx vitest run test/man
 */

export interface ExampleKey {
  section: string;
  key: string;
  value: string;
  doc: string[];
}

/**
 * Keys of the example in order, each with the comment lines just above it. A table the example
 * leaves commented out (one of two exclusive choices, e.g. `#[dns.gss]`) has its header and keys
 * written `#[table]` and `#key = value`: documented, yet the example stays valid.
 */
export function exampleKeys(text: string): { intro: string[]; keys: ExampleKey[] } {
  const intro: string[] = [];
  const keys: ExampleKey[] = [];
  let section = '';
  let commented = false;
  let doc: string[] = [];
  let seenKey = false;
  for (const raw of text.split('\n')) {
    const off = /^#(\[[\w.]+\])$/.exec(raw);
    if (off) commented = true;
    else if (/^\[/.test(raw)) commented = false;
    // Inside a commented-out table, "#key = value" is a key.
    const line = off ? off[1]! : commented && /^#\w+ = /.test(raw) ? raw.slice(1) : raw;
    const comment = /^#\s?(.*)$/.exec(line);
    const header = /^\[([\w.]+)\]$/.exec(line);
    const kv = /^(\w+) = (.*)$/.exec(line);
    if (comment) doc.push(comment[1]!);
    else if (header) {
      section = header[1]!;
      doc = doc.filter(Boolean); // a section's own comment goes to its first key
    } else if (kv) {
      keys.push({ section, key: kv[1]!, value: kv[2]!, doc });
      doc = [];
      seenKey = true;
    } else if (line.trim() === '' && !seenKey && doc.length) {
      intro.push(...doc);
      doc = [];
    }
  }
  return { intro, keys };
}

/** roff-safe text: backslashes doubled, a leading dot or quote protected. */
function roff(s: string): string {
  const t = s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  return /^[.']/.test(t) ? `\\&${t}` : t;
}

export function tomlPage(example: string): string {
  const { keys } = exampleKeys(example);
  const out = [
    '.\\" Generated from etc/failover-agent/dr.toml.example by test/man/toml-page.ts: do not edit.',
    '.TH FAILOVER-AGENT.TOML 5 "" "failover-agent" "File Formats"',
    '.SH NAME',
    'failover-agent.toml \\- configuration of a failover-agent instance',
    '.SH SYNOPSIS',
    '.I /etc/failover-agent/NAME.toml',
    '.SH DESCRIPTION',
    'The configuration of the instance',
    '.BR failover-agent@NAME ,',
    'in TOML. The file name is the instance name. Keys not listed here are errors, and every error',
    'names the file, the key and the line (exit status 78). Durations are strings with a unit:',
    '"250ms", "10s", "5m", "24h", "1m30s".',
    '.B failoverctl check\\-config',
    'validates a file exactly as the agent does;',
    '.B systemctl reload',
    'applies the keys that',
    '.BR failover-agent (8)',
    'names under RELOAD and refuses any other change.',
    'Commented examples:',
    '.IR /etc/failover-agent/primary.toml.example ,',
    '.IR /etc/failover-agent/dr.toml.example .',
  ];
  let section: string | null = null;
  for (const k of keys) {
    if (k.section !== section) {
      section = k.section;
      out.push(section === '' ? '.SH TOP LEVEL' : `.SH [${section}]`);
    }
    out.push('.TP', `.B ${section === '' ? '' : `${section}.`}${k.key}`, ...k.doc.filter(Boolean).map(roff), '.br', `Example: ${roff(`${k.key} = ${k.value}`)}`);
  }
  out.push(
    '.SH FILES',
    '.TP',
    '.I /etc/failover-agent/NAME.toml',
    'the configuration of instance NAME',
    '.SH SEE ALSO',
    '.BR failover-agent (8),',
    '.BR failoverctl (1)',
    '',
  );
  return out.join('\n');
}
