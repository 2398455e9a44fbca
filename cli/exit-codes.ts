import { ArcaError } from '../repository/errors.ts';

/** Exit codes of the CLI contract (design §4). */
export const EXIT = {
  ok: 0,
  fatal: 1,
  partial: 3,
  noRepository: 10,
  lockFailed: 11,
  wrongPassword: 12,
  /** stdout's reader went away (`arca ls | head`): 128 + SIGPIPE, as a process that signal stops. */
  brokenPipe: 141,
} as const;

export function exitCodeOf(err: unknown): number {
  if (!(err instanceof ArcaError)) return EXIT.fatal;
  if (err.code === 'ARCA_ERR_REPO_NOT_FOUND') return EXIT.noRepository;
  if (err.code === 'ARCA_ERR_WRONG_PASSWORD') return EXIT.wrongPassword;
  if (err.code === 'ARCA_ERR_LEASE_LAPSED' || err.code === 'ARCA_ERR_MAINTENANCE_BUSY') return EXIT.lockFailed;
  return EXIT.fatal;
}
