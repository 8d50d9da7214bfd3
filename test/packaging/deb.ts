/**
 * The packages for tests: build them (or reuse fresh ones) with scripts/build-packages, and put the
 * .deb into a booted container the way users install it. For any real-systemd test that wants the
 * agent exactly as shipped, instead of test/fixtures/agent-in-container.ts's file copies:
 *
 *   const pkgs = await ensurePackages();
 *   c = await bootContainer({ name, setup: (root) => { stageDeb(root, pkgs.debs.bookworm) } });
 *   await installDeb(c, { unitDropIn: '[Service]\nWatchdogSec=4s\n' });
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Container, Suite } from '../fixtures/nspawn.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface Packages {
  /** the .deb built in each release's root (file names end in +deb12 / +deb13) */
  debs: Record<Suite, string>;
  rpm: string;
  /** wall time of scripts/build-packages */
  seconds: number;
  /** dist/packages was already built from these sources */
  reused: boolean;
}

/** scripts/build-packages --reuse [args]: the paths of the .deb and the .rpm (root needed). */
export function ensurePackages(args: string[] = []): Promise<Packages> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      path.join(REPO, 'scripts/build-packages'),
      ['--reuse', ...args],
      { cwd: REPO, timeout: 900_000, maxBuffer: 64 << 20, env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`scripts/build-packages ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-6000)}`));
        const paths = stdout.trim().split('\n');
        const bookworm = paths.find((p) => p.endsWith('+deb12_amd64.deb'));
        const trixie = paths.find((p) => p.endsWith('+deb13_amd64.deb'));
        const rpm = paths.find((p) => p.endsWith('.rpm'));
        if (!bookworm || !trixie || !rpm) return reject(new Error(`no package paths in: ${stdout}`));
        resolve({ debs: { bookworm, trixie }, rpm, seconds: (performance.now() - t0) / 1000, reused: /up to date/.test(stderr) });
      },
    );
  });
}

/** Copies a package into a container's root before boot; returns its path inside. */
export function stageDeb(rootDir: string, deb: string): string {
  fs.mkdirSync(path.join(rootDir, 'root/pkgs'), { recursive: true });
  fs.copyFileSync(deb, path.join(rootDir, 'root/pkgs', path.basename(deb)));
  return `/root/pkgs/${path.basename(deb)}`;
}

/**
 * apt-get install of a staged .deb (dependencies the root lacks come from Debian's mirror), plus an
 * optional drop-in for the template (e.g. a short WatchdogSec for tests).
 */
export async function installDeb(c: Container, debInContainer: string, opts: { unitDropIn?: string } = {}): Promise<string> {
  const run = async (cmd: string, input?: string): Promise<string> => {
    const r = await c.exec(['sh', '-c', cmd], { timeoutMs: 300_000, input });
    if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}):\n${r.stdout}${r.stderr}`);
    return r.stdout + r.stderr;
  };
  const out = await run(`DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${debInContainer} </dev/null`);
  if (opts.unitDropIn) {
    await run('mkdir -p /etc/systemd/system/failover-agent@.service.d && cat > /etc/systemd/system/failover-agent@.service.d/test.conf && systemctl daemon-reload', opts.unitDropIn);
  }
  return out;
}
