/**
 * docs/PERFORMANCE.md upkeep shared by the benchmarks: each bench owns one
 * section with one table and appends one row per run.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface PerfSection {
  /** The section's heading line, e.g. '## DNS: ...'. */
  heading: string;
  /** The section's text under the heading, before the table (created with the section). */
  intro: string[];
  /** The table's header and separator lines. */
  tableHead: string[];
}

const FILE_HEADER = [
  '# Performance',
  '',
  'Benchmarks run on the developer or CI machine against real servers on 127.0.0.1 (never in the',
  'unit tests). Each run appends one row; a missed target is recorded, it does not fail the build.',
  '',
].join('\n');

/** Adds `row` as the last row of the section's table, creating the file and/or the section when missing. */
export function appendPerfRow(file: string, section: PerfSection, row: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : FILE_HEADER;
  if (!text.endsWith('\n')) text += '\n';
  const lines = text.split('\n');
  const sectionAt = lines.indexOf(section.heading);
  if (sectionAt < 0) {
    const body = [section.heading, '', ...section.intro, '', ...section.tableHead].join('\n');
    fs.writeFileSync(file, `${text}${text.endsWith('\n\n') ? '' : '\n'}${body}\n${row}\n`);
    return;
  }
  // The table's last line: the first table line after the heading, then all contiguous '|' lines.
  let i = sectionAt + 1;
  while (i < lines.length && !lines[i]!.startsWith('|') && !lines[i]!.startsWith('## ')) i++;
  if (i >= lines.length || lines[i]!.startsWith('## ')) {
    lines.splice(i, 0, ...section.tableHead, row, ...(i < lines.length ? [''] : []));
  } else {
    while (i < lines.length && lines[i]!.startsWith('|')) i++;
    lines.splice(i, 0, row);
  }
  fs.writeFileSync(file, lines.join('\n'));
}

/**
 * Appends `entry` (one run, with its "case") to a JSON results file that holds a list of runs,
 * keeping the last `keep`. A file from before the list (one run as an object) becomes its first
 * entry, as `case` "full".
 */
export function appendResultEntry(file: string, entry: Record<string, unknown>, keep = 20): void {
  let list: unknown[] = [];
  if (fs.existsSync(file)) {
    const old = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    list = Array.isArray(old) ? old : [{ case: 'full', ...(old as Record<string, unknown>) }];
  }
  list.push(entry);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(list.slice(-keep), null, 2)}\n`);
}
