/**
 * Atomic replacement of a small state file: write a temp file in the same
 * directory, fsync it, rename it over the target, fsync the directory. A
 * reader (or a crash at any point) sees the old file or the new one, never
 * a partial one.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

export async function writeFileAtomic(file: string, data: string, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp`);
  const fh = await fs.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  let dh: fs.FileHandle | undefined;
  try {
    dh = await fs.open(dir, 'r');
    await dh.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic for readers.
  } finally {
    await dh?.close();
  }
}

/** The agent's state directory: $STATE_DIRECTORY (systemd), else /var/lib/failover-agent/<instance>. */
export function stateDir(instance: string, env: NodeJS.ProcessEnv = process.env): string {
  const first = env.STATE_DIRECTORY?.split(':')[0];
  return first || path.join('/var/lib/failover-agent', instance);
}
