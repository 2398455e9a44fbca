/**
 * Where the node agent leaves its verdict for `arca restore-wait`: `<volume>/.arca/<uid>` once a
 * volume is restored, `<volume>/.arca/<uid>.failed` holding the reason if it could not be. Both
 * sides import this and nothing else of each other, so restore-wait stays free of the engine.
 */

/** The marker directory inside each volume. */
export const MARKER_DIR = '.arca';

/** Letters, digits, '.', '_' and '-', not starting with a symbol: a marker name never climbs out of MARKER_DIR. */
const RESTORE_UID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function isRestoreUid(uid: string): boolean {
  return RESTORE_UID.test(uid);
}
