/** Why a BackupRepository cannot be used, in terms of the objects a user can fix. */
export type RepositoryProblem = 'MissingObject' | 'BadSecret' | 'WrongPassword' | 'RepositoryNotFound' | 'CannotOpen';

export class RepositoryAccessError extends Error {
  override readonly name = 'RepositoryAccessError';
  readonly code = 'ARCA_REPOSITORY_ACCESS';
  readonly problem: RepositoryProblem;

  constructor(problem: RepositoryProblem, message: string, options?: ErrorOptions) {
    super(message, options);
    this.problem = problem;
  }
}
