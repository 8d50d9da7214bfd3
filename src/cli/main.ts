/** Entry point of the failoverctl binary. */
import { run } from './failoverctl.js';

run(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`failoverctl: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
