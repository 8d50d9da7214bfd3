/**
 * Error classes with stable `code`s (as undici does) and the process exit code
 * each maps to (SPEC §8: 0 ok, 1 refused/precondition, 69 unreachable,
 * 77 permission/authentication, 78 configuration).
 */
export const ExitCode = {
  OK: 0,
  REFUSED: 1,
  UNAVAILABLE: 69,
  NOPERM: 77,
  CONFIG: 78,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class AgentError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  constructor(code: string, message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Exit code for anything thrown: our errors carry one, anything else is a bug (1). */
export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof AgentError ? err.exitCode : ExitCode.REFUSED;
}
