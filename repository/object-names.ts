/** Where each kind of object lives in storage. Every name but "config" ends in the object's ID. */
export const CONFIG_NAME = 'config';
export const KEYS_PREFIX = 'keys/';
export const DATA_PREFIX = 'data/';
export const INDEX_PREFIX = 'index/';
export const SNAPSHOTS_PREFIX = 'snapshots/';
export const LEASES_PREFIX = 'leases/';
export const PRUNE_PLANS_PREFIX = 'prune-plans/';

export const packName = (idHex: string): string => `${DATA_PREFIX}${idHex.slice(0, 2)}/${idHex}`;
export const indexName = (idHex: string): string => `${INDEX_PREFIX}${idHex}`;
export const snapshotName = (idHex: string): string => `${SNAPSHOTS_PREFIX}${idHex}`;
export const keyName = (idHex: string): string => `${KEYS_PREFIX}${idHex}`;
/** Leases are rewritten by their holder, so they are named by a random 128-bit ID, not a hash. */
export const leaseName = (idHex: string): string => `${LEASES_PREFIX}${idHex}`;
export const prunePlanName = (idHex: string): string => `${PRUNE_PLANS_PREFIX}${idHex}`;
/** A prune's word that lease `idHex` expired: its holder must never write again (docs/format.md §9). */
export const revocationName = (idHex: string): string => `${LEASES_PREFIX}${idHex}.revoked`;

const HEX_ID = /^[0-9a-f]{64}$/;

/** The ID at the end of an object name, or undefined when the name is not one of ours. */
export function idOfName(name: string): string | undefined {
  const id = name.slice(name.lastIndexOf('/') + 1);
  return HEX_ID.test(id) ? id : undefined;
}
