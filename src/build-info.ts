/**
 * What this build is and where it runs: the version (package.json, inlined by the bundler), the
 * running Node and the sd_notify path. One object for `--version`, `failover_build_info`,
 * `failoverctl status` and /healthz.
 */
import pkg from '../package.json' with { type: 'json' };
import type { NotifyPath } from './notify/notify.js';

export const VERSION: string = pkg.version;

export interface BuildInfo {
  version: string;
  /** process.version of the running Node, e.g. v18.19.0 */
  node: string;
  /** How sd_notify reaches systemd (`none`: not started by systemd). */
  notify: NotifyPath;
}

export function buildInfo(notify: NotifyPath): BuildInfo {
  return { version: VERSION, node: process.version, notify };
}

/** The `--version` line of both programs. */
export function versionLine(program: string): string {
  return `${program} ${VERSION} (node ${process.version})`;
}
