/**
 * Seeds of the checked-out commit: CI runs a set of seeds derived from `git rev-parse HEAD`, so each
 * landing explores seeds nobody ran before (README "Simulation"); without git (a tarball), from
 * the date (UTC). Seven digits: apart from the default set (1-20) and every fixed set the docs name.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';

export function commitSeed(now: Date = new Date()): { first: number; from: string } {
  let rev = '';
  try {
    rev = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // no git, or not a repository: the date below
  }
  const key = /^[0-9a-f]{40,64}$/.test(rev) ? rev : now.toISOString().slice(0, 10);
  const from = key === rev ? `commit ${rev.slice(0, 12)}` : `date ${key}`;
  return { first: 1_000_000 + (createHash('sha256').update(key).digest().readUInt32BE(0) % 9_000_000), from };
}
