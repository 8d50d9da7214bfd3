/**
 * Which config file a command means: --config FILE, --instance NAME, or, with
 * neither, the only *.toml in the config directory (SPEC §8).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../config/load.js';
import { DEFAULT_CONFIG_DIR, configPathForInstance } from '../config/schema.js';

export interface ConfigSelector {
  config?: string;
  instance?: string;
}

export function selectConfigFile(sel: ConfigSelector, env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.FAILOVER_AGENT_CONFIG_DIR || DEFAULT_CONFIG_DIR;
  if (sel.config) return path.resolve(sel.config);
  if (sel.instance) return configPathForInstance(sel.instance, dir);
  let tomls: string[] = [];
  try {
    tomls = fs.readdirSync(dir).filter((f) => f.endsWith('.toml'));
  } catch {
    // Reported below as "none found".
  }
  if (tomls.length === 1) return path.join(dir, tomls[0]!);
  const why = tomls.length === 0 ? `no *.toml in ${dir}` : `${tomls.length} configs in ${dir} (${tomls.join(', ')})`;
  throw new ConfigError(`${why}: name one with --config FILE or --instance NAME`, []);
}
