/** The machine a benchmark ran on, for its JSON result (ratios are only comparable on one machine). */
import os from 'node:os';

export function machineInfo(): { cpus: number; cpu_model: string; node: string; platform: string; loadavg: number[] } {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadavg: os.loadavg().map((x) => Math.round(x * 1000) / 1000),
  };
}
