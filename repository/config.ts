import { randomBytes } from 'node:crypto';
import { DEFAULT_CHUNKER_PARAMS, validateChunkerParams, type ChunkerParams } from '../chunker/index.ts';
import { CorruptObjectError } from './errors.ts';
import { CONFIG_NAME } from './object-names.ts';
import type { MasterKey } from './crypto/master-key.ts';
import { open, seal } from './crypto/seal.ts';
import type { Storage } from './storage/storage.ts';

/** Format parameters fixed at `init`; data, so later versions can add algorithms (design §3). */
export interface RepoConfig {
  readonly version: 1;
  readonly id: string;
  readonly created: string;
  readonly chunker: ChunkerParams;
  /**
   * Key of the chunker's gear table (hex, 32 bytes), so boundaries differ per repository. It lives
   * in the sealed config rather than being derived from the master key so that `init
   * --copy-chunker-params` can give two repositories the same boundaries, which `copy` needs to
   * deduplicate against data backed up directly into the destination.
   */
  readonly chunkerKey: string;
  readonly compression: { readonly algorithm: 'zstd'; readonly level: number };
  readonly packSize: number;
}

export const DEFAULT_PACK_SIZE = 16 << 20;

export interface ConfigOverrides {
  readonly chunker?: Partial<ChunkerParams>;
  /** Hex key to share chunk boundaries with another repository (see `chunkerKey`). */
  readonly chunkerKey?: string;
  readonly compressionLevel?: number;
  readonly packSize?: number;
}

export function newConfig(overrides: ConfigOverrides = {}): RepoConfig {
  return {
    version: 1,
    id: randomBytes(32).toString('hex'),
    created: new Date().toISOString(),
    chunker: validateChunkerParams({ ...DEFAULT_CHUNKER_PARAMS, ...overrides.chunker }),
    chunkerKey: overrides.chunkerKey ?? randomBytes(32).toString('hex'),
    compression: { algorithm: 'zstd', level: overrides.compressionLevel ?? 3 },
    packSize: overrides.packSize ?? DEFAULT_PACK_SIZE,
  };
}

export async function writeConfig(storage: Storage, keys: MasterKey, config: RepoConfig): Promise<void> {
  await storage.put(CONFIG_NAME, seal(keys.encKey, 'config', Buffer.from(JSON.stringify(config))));
}

export async function readConfig(storage: Storage, keys: MasterKey): Promise<RepoConfig> {
  const sealed = await storage.get(CONFIG_NAME);
  try {
    const config = JSON.parse(open(keys.encKey, 'config', sealed).toString('utf8')) as Omit<RepoConfig, 'version'> & { version: unknown };
    if (config.version !== 1) throw new Error(`unsupported repository version ${String(config.version)}; upgrade Arca`);
    validateChunkerParams(config.chunker);
    if (typeof config.chunkerKey !== 'string' || !/^[0-9a-f]{64}$/.test(config.chunkerKey)) throw new Error('missing chunker key');
    return config as RepoConfig;
  } catch (err) {
    throw new CorruptObjectError(CONFIG_NAME, err instanceof Error ? err.message : 'unreadable', { cause: err });
  }
}
