/**
 * Agent entry point. For now (the DNS witness milestone) it validates the
 * config and key, reads the witness once and reports what it sees; the
 * failover loops arrive with the failover engine.
 */
import { loadConfig } from '../config/load.js';
import { loadKeyFile } from '../config/keyfile.js';
import { configPathForInstance } from '../config/schema.js';
import { AgentError, ExitCode, exitCodeOf } from '../errors.js';
import { openWitness } from '../lease/open.js';
import { createLogger } from '../log/logger.js';

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i >= 0) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

async function main(argv: string[]): Promise<number> {
  const file = argValue(argv, '--config') ?? (argValue(argv, '--instance') ? configPathForInstance(argValue(argv, '--instance')!) : undefined);
  if (!file) throw new AgentError('USAGE', 'usage: agent.js --config FILE | --instance NAME', ExitCode.CONFIG);
  const config = loadConfig(file);
  const log = createLogger({ level: config.log.level });
  const key = loadKeyFile(config.dns.key_file);
  const w = await openWitness(config, key);
  const snap = await w.witness.read();
  log.info('witness read', {
    event: 'dns_read',
    server: `${w.server.host}:${w.server.port}`,
    zone: w.zone,
    addresses: snap.addresses.join(','),
    holder: snap.lease?.holder,
    epoch: snap.lease?.epoch,
    seq: snap.lease?.seq,
    offset_s: snap.offsetSeconds,
  });
  log.warning('failover loops are not part of this build yet; exiting after the first read', { event: 'exit' });
  return ExitCode.OK;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`failover-agent: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = exitCodeOf(err);
  },
);
