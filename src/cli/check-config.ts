/** failoverctl check-config: the agent's own validation, run on demand, plus the margin warnings. */
import { loadConfig } from '../config/load.js';
import { loadKeyFile, type TsigKey } from '../config/keyfile.js';
import { marginWarnings } from '../config/margins.js';
import type { Config } from '../config/schema.js';
import { ExitCode } from '../errors.js';
import { openWitness } from '../lease/open.js';
import type { Output } from './output.js';
import { selectConfigFile, type ConfigSelector } from './select-config.js';

/** Reads of the witness timed to measure the round trip (the median is taken). */
const RTT_SAMPLES = 3;

export async function checkConfigCommand(args: ConfigSelector, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const file = selectConfigFile(args, env);
  const config = loadConfig(file); // ConfigError: exit 78, every problem listed
  const key = loadKeyFile(config.dns.key_file); // KeyFileError: exit 77 (mode) or 78 (content)
  const rtt = await measureRtt(config, key);
  const warnings = marginWarnings(config, typeof rtt === 'number' ? rtt : undefined);
  const lines = [
    `${file}: OK (instance ${config.instance}, role ${config.role}, key ${key.name} ${key.algorithm})`,
    typeof rtt === 'number' ? `DNS round trip: ${rtt.toFixed(1)} ms (median of ${RTT_SAMPLES} signed reads)` : `DNS round trip: not measured (${rtt.error})`,
    ...warnings.map((w) => `warning: ${w.key}: ${w.message}`),
  ];
  out.result(lines.join('\n'), {
    ok: true,
    file,
    instance: config.instance,
    role: config.role,
    key: { name: key.name, algorithm: key.algorithm, file: config.dns.key_file },
    dnsRttMs: typeof rtt === 'number' ? rtt : null,
    warnings,
  });
  return ExitCode.OK;
}

/** The median time of a signed read of the witness, or why it could not be measured (never fatal here). */
async function measureRtt(config: Config, key: TsigKey): Promise<number | { error: string }> {
  try {
    // One attempt per read: an unreachable server costs one dns.timeout here, not the agent's full budget.
    const { witness } = await openWitness({ ...config, dns: { ...config.dns, retries: 0 } }, key);
    const samples: number[] = [];
    for (let i = 0; i < RTT_SAMPLES; i++) {
      const t0 = performance.now();
      await witness.read();
      samples.push(performance.now() - t0);
    }
    return samples.sort((a, b) => a - b)[Math.floor(RTT_SAMPLES / 2)]!;
  } catch (err) {
    return { error: (err as Error).message };
  }
}
