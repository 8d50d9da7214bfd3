/**
 * failoverctl pause / resume: written at the witness directly with the key file (admin/pause.ts),
 * from either site, whether or not an agent runs; both agents see it at their next read.
 */
import os from 'node:os';

import { runPause, witnessPauseIo, type PauseOp, type PauseResult } from '../admin/pause.js';
import { loadConfig } from '../config/load.js';
import { loadSigning } from '../dns/signing.js';
import { parseDuration } from '../config/duration.js';
import { AgentError, ExitCode } from '../errors.js';
import { openWitness } from '../lease/open.js';
import type { Output } from './output.js';
import { selectConfigFile, type ConfigSelector } from './select-config.js';

export interface PauseArgs extends ConfigSelector {
  for?: string;
  reason?: string;
}

export async function pauseCommand(op: PauseOp, args: PauseArgs, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(selectConfigFile(args, env));
  let forSeconds: number | null = null;
  if (op === 'pause' && args.for !== undefined) {
    try {
      forSeconds = Math.ceil(parseDuration(args.for) / 1000);
    } catch (err) {
      throw new AgentError('USAGE', `--for: ${(err as Error).message}`, ExitCode.CONFIG);
    }
    if (forSeconds <= 0) throw new AgentError('USAGE', '--for: must be longer than 0 s', ExitCode.CONFIG);
  }
  const { witness } = await openWitness(config, loadSigning(config));
  let result: PauseResult;
  try {
    result = await runPause(op, { by: `${os.hostname()}/${config.instance}`, reason: args.reason ?? '', forSeconds }, witnessPauseIo(witness, (seen) => Date.now() / 1000 + (seen.offsetSeconds ?? 0)));
  } catch (err) {
    if (err instanceof AgentError && err.code === 'DNS_REFUSED') {
      throw new AgentError(
        err.code,
        `${err.message}: the DNS server does not let this key update ${config.dns.control_name} (TXT); allow it beside the record and the lease (failoverctl setup prints the server side)`,
        err.exitCode,
      );
    }
    throw err;
  }
  out.result(result.text, result);
  return ExitCode.OK;
}
