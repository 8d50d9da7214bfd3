/** failoverctl check-config: the agent's own validation, run on demand. */
import { loadConfig } from '../config/load.js';
import { loadKeyFile } from '../config/keyfile.js';
import { ExitCode } from '../errors.js';
import type { Output } from './output.js';
import { selectConfigFile, type ConfigSelector } from './select-config.js';

export async function checkConfigCommand(args: ConfigSelector, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const file = selectConfigFile(args, env);
  const config = loadConfig(file); // ConfigError: exit 78, every problem listed
  const key = loadKeyFile(config.dns.key_file); // KeyFileError: exit 77 (mode) or 78 (content)
  out.result(`${file}: OK (instance ${config.instance}, role ${config.role}, key ${key.name} ${key.algorithm})`, {
    ok: true,
    file,
    instance: config.instance,
    role: config.role,
    key: { name: key.name, algorithm: key.algorithm, file: config.dns.key_file },
  });
  return ExitCode.OK;
}
