/**
 * failoverctl: the admin command. `run()` takes argv and output streams and
 * returns the exit code, so tests drive it in-process as well as through the
 * bundled binary.
 *
 * Exit codes (SPEC §8): 0 ok; 1 refused or a precondition failed; 69 a server
 * unreachable; 77 permission or authentication refused; 78 configuration error.
 */
import yargs, { type Argv } from 'yargs';
import { pauseCommand, type PauseArgs } from './pause-commands.js';
import { versionLine } from '../build-info.js';
import { DEFAULT_COLLECTOR_UNIT, DEFAULT_CONFIG_DIR } from '../config/schema.js';
import { AgentError, ExitCode, exitCodeOf } from '../errors.js';
import { adminCommand, reloadCommand, statusCommand, syncCommand, type AgentArgs } from './agent-commands.js';
import { checkConfigCommand } from './check-config.js';
import { dnsCommand, initCommand } from './dns-commands.js';
import { importEnvCommand } from './import-env.js';
import { Output, type OutputStreams } from './output.js';
import { POLKIT_DIR, SETUP_FLAGS, setupCommand, type SetupArgs } from './setup.js';
import type { ConfigSelector } from './select-config.js';

export interface GlobalArgs extends ConfigSelector {
  json: boolean;
}

/** `stdin` only for setup's questions (a terminal); without it setup needs every answer as a flag. */
export async function run(argv: string[], streams: OutputStreams & { stdin?: NodeJS.ReadableStream & { isTTY?: boolean } }, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let code: number = ExitCode.OK;
  let usageFailed = false;
  let json = argv.includes('--json');
  const out = new Output(streams, () => json);
  const guard =
    <A>(fn: (args: A) => Promise<number>) =>
    async (args: A): Promise<void> => {
      // yargs still runs the handler after a usage error: don't.
      if (usageFailed) return;
      try {
        code = await fn(args);
      } catch (err) {
        code = exitCodeOf(err);
        out.error(err);
      }
    };
  const parser: Argv<GlobalArgs> = yargs(argv)
    .scriptName('failoverctl')
    .usage('$0 [--config FILE | --instance NAME] [--json] <command>')
    .option('config', { type: 'string', describe: 'configuration file' })
    .option('instance', { type: 'string', describe: `instance name: ${DEFAULT_CONFIG_DIR}/NAME.toml` })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .option('socket', { type: 'string', describe: "the agent's control socket (default: from the instance)" })
    .conflicts('config', 'instance')
    .command(
      'check-config',
      'validate the configuration and the key file',
      (y) => y,
      guard((a: GlobalArgs) => checkConfigCommand(a, out, env)),
    )
    .command(
      'status',
      'what each site, DNS and the lease look like, and why the agent decides what it decides; exit 0 when this site is fine in its role',
      (y) => y,
      guard((a: GlobalArgs & AgentArgs) => statusCommand(a, out, env)),
    )
    .command(
      'failback',
      'move back to the primary (refused until VM sync is FAILBACK READY, unless --force)',
      (y) =>
        y
          .option('force', { type: 'boolean', default: false, describe: 'override the sync gate and, on the primary, a failed collector self-check (logged as a warning)' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and the preconditions only' }),
      guard((a: GlobalArgs & AgentArgs & { force: boolean; dryRun: boolean }) => adminCommand('failback', a, out, env)),
    )
    .command(
      'switchover',
      'planned move to the DR (maintenance of the primary)',
      (y) =>
        y
          .option('force', { type: 'boolean', default: false, describe: "on the DR, override its failed collector self-check (logged as a warning)" })
          .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and the preconditions only' }),
      guard((a: GlobalArgs & AgentArgs & { force: boolean; dryRun: boolean }) => adminCommand('switchover', a, out, env)),
    )
    .command(
      'pause',
      'stop automatic moves on both sites (written at the witness; switchover and failback still work)',
      (y) =>
        y
          .option('for', { type: 'string', describe: 'end the pause by itself after this long ("2h", "30m")' })
          .option('reason', { type: 'string', describe: 'why, shown in both sites\' status' }),
      guard((a: GlobalArgs & PauseArgs) => pauseCommand('pause', a, out, env)),
    )
    .command(
      'resume',
      'allow automatic takeover and handover again',
      (y) => y,
      guard((a: GlobalArgs & PauseArgs) => pauseCommand('resume', a, out, env)),
    )
    .command(
      'sync',
      'run a VM sync check now: gaps found, repaired, and the failback gate',
      (y) => y,
      guard((a: GlobalArgs & AgentArgs) => syncCommand(a, out, env)),
    )
    .command(
      'reload',
      'make the running agent re-read its configuration and wait for its verdict (systemctl reload runs this)',
      (y) => y,
      guard((a: GlobalArgs & AgentArgs) => reloadCommand(a, out, env)),
    )
    .command(
      'dns',
      'read the failover record and the lease straight from the server',
      (y) => y.option('tcp', { type: 'boolean', default: false, describe: 'query over TCP' }),
      guard((a: GlobalArgs & { tcp: boolean }) => dnsCommand(a, out, env)),
    )
    .command(
      'init',
      'create the failover record (naming the primary) and the first lease',
      (y) => y.option('force', { type: 'boolean', default: false, describe: 'overwrite an existing record and lease (still a CAS)' }),
      guard((a: GlobalArgs & { force: boolean }) => initCommand(a, out, env)),
    )
    .command(
      'setup',
      'write primary.toml, dr.toml and a new TSIG key, and print the DNS server side (asks on a terminal; flags for automation)',
      (y) =>
        y
          // The answers' flags come from setup's QUESTIONS (one list for flags, prompts and checks).
          .options(SETUP_FLAGS as Record<string, { type: 'string'; describe: string }>)
          .option('out', { type: 'string', describe: `directory for primary.toml and dr.toml (default ${DEFAULT_CONFIG_DIR})` })
          .option('polkit-dir', { type: 'string', describe: `where the polkit rule for a collector unit other than ${DEFAULT_COLLECTOR_UNIT} goes (default ${POLKIT_DIR}; printed when not writable)` })
          .option('force', { type: 'boolean', default: false, describe: 'overwrite existing files' }) as unknown as Argv<GlobalArgs & SetupArgs>,
      guard((a: GlobalArgs & SetupArgs) => setupCommand(a, out, { stdin: streams.stdin ?? process.stdin, stdout: streams.stdout })),
    )
    .command(
      'import-env <file> [more..]',
      'turn the original .env.primary / .env.dr (plus .env.otel-watcher, vm-sync .env) into a TOML config on stdout',
      (y) =>
        y
          .positional('file', { type: 'string', demandOption: true, describe: 'env file of the original system' })
          .positional('more', { type: 'string', array: true, describe: 'more env files of the same site, merged in' })
          .option('role', { choices: ['primary', 'dr'] as const, describe: 'role, when the file has no ROLE and its name does not tell' }),
      guard((a: GlobalArgs & { file: string; more?: string[]; role?: 'primary' | 'dr' }) => importEnvCommand(a, out, streams.stderr)),
    )
    .demandCommand(1, 'name a command')
    .strict()
    .exitProcess(false)
    .fail((msg, err) => {
      usageFailed = true;
      code = ExitCode.REFUSED;
      out.error(err ?? new AgentError('USAGE', `${msg}\nRun failoverctl --help for usage.`, ExitCode.REFUSED));
    })
    .help()
    .version(versionLine('failoverctl'))
    .wrap(Math.min(100, process.stdout.columns ?? 100));
  parser.showHelpOnFail(false);
  try {
    const parsed = await parser.parseAsync();
    json = Boolean(parsed.json);
  } catch {
    // Reported by .fail() already.
  }
  return code;
}
