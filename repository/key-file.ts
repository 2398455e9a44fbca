import { blake3 } from '@napi-rs/blake-hash';
import os from 'node:os';
import { ArcaError, CorruptObjectError, WrongPasswordError } from './errors.ts';
import { calibrateKdf, deriveKey, type KdfParams, type KdfSettings } from './crypto/kdf.ts';
import { masterKeyFrom, type MasterKey } from './crypto/master-key.ts';
import { open, seal, SealOpenError } from './crypto/seal.ts';
import { idOfName, keyName, KEYS_PREFIX } from './object-names.ts';
import type { Storage } from './storage/storage.ts';

/**
 * A key file wraps the master secret with a key derived from one password. It is the only
 * object stored in the clear (JSON), and holds nothing usable without the password.
 */
interface KeyFileJson {
  version: 1;
  created: string;
  hostname: string;
  username: string;
  /** `lanes` is absent in key files from before lanes: 1. */
  kdf: { algorithm: 'scrypt'; N: number; r: number; p: number; lanes?: number; salt: string };
  wrapped: string;
}

export interface KeyInfo {
  readonly id: string;
  readonly created: string;
  readonly hostname: string;
  readonly username: string;
}

export async function writeKeyFile(storage: Storage, master: MasterKey, password: Buffer, settings: KdfSettings = {}): Promise<KeyInfo> {
  const kdf = await calibrateKdf(settings);
  const wrappingKey = await deriveKey(password, kdf);
  const json: KeyFileJson = {
    version: 1,
    created: new Date().toISOString(),
    hostname: os.hostname(),
    username: os.userInfo().username,
    kdf: { algorithm: 'scrypt', N: kdf.N, r: kdf.r, p: kdf.p, lanes: kdf.lanes, salt: kdf.salt.toString('base64') },
    wrapped: seal(wrappingKey, 'master-key', master.secret).toString('base64'),
  };
  const bytes = Buffer.from(JSON.stringify(json, null, 2));
  const id = blake3(bytes).toString('hex');
  await storage.put(keyName(id), bytes);
  return { id, created: json.created, hostname: json.hostname, username: json.username };
}

function parseKeyFile(name: string, bytes: Buffer): KeyFileJson {
  // A key file is named by the hash of its bytes: checking it tells a damaged key file (say, a
  // flipped byte in the salt) from a wrong password, which would otherwise look the same.
  const id = idOfName(name);
  if (id !== undefined && blake3(bytes).toString('hex') !== id) throw new CorruptObjectError(name, 'content does not match its name');
  try {
    const json = JSON.parse(bytes.toString('utf8')) as { version?: unknown; kdf?: { algorithm?: unknown }; wrapped?: unknown };
    if (json.version !== 1 || json.kdf?.algorithm !== 'scrypt' || typeof json.wrapped !== 'string') throw new Error('unknown layout');
    return json as KeyFileJson;
  } catch (err) {
    throw new CorruptObjectError(name, 'not a valid key file', { cause: err });
  }
}

export async function listKeys(storage: Storage): Promise<KeyInfo[]> {
  const keys: KeyInfo[] = [];
  for await (const obj of storage.list(KEYS_PREFIX)) {
    const id = idOfName(obj.name);
    if (id === undefined) continue;
    const json = parseKeyFile(obj.name, await storage.get(obj.name));
    keys.push({ id, created: json.created, hostname: json.hostname, username: json.username });
  }
  return keys.sort((a, b) => a.created.localeCompare(b.created));
}

/** Tries every key file with the password; returns the master key and which key opened it. */
export async function unlockMasterKey(storage: Storage, password: Buffer): Promise<{ master: MasterKey; keyId: string }> {
  let sawKey = false;
  let damaged: CorruptObjectError | undefined;
  for await (const obj of storage.list(KEYS_PREFIX)) {
    const id = idOfName(obj.name);
    if (id === undefined) continue;
    sawKey = true;
    try {
      const master = await openKeyFile(storage, obj.name, password);
      if (master) return { master, keyId: id };
    } catch (err) {
      // A damaged key file must not lock out the passwords of the others; it is reported if none opens.
      if (!(err instanceof CorruptObjectError)) throw err;
      damaged ??= err;
    }
  }
  if (!sawKey) throw new ArcaError('ARCA_ERR_NO_KEYS', `The repository at ${storage.location} has no key files; it cannot be opened.`);
  throw damaged ?? new WrongPasswordError();
}

/** The master key if `password` opens the key file `name`, undefined if it does not. */
async function openKeyFile(storage: Storage, name: string, password: Buffer): Promise<MasterKey | undefined> {
  const json = parseKeyFile(name, await storage.get(name));
  let wrappingKey: Buffer;
  try {
    const kdf: KdfParams = { algorithm: 'scrypt', N: json.kdf.N, r: json.kdf.r, p: json.kdf.p, lanes: json.kdf.lanes ?? 1, salt: Buffer.from(json.kdf.salt, 'base64') };
    wrappingKey = await deriveKey(password, kdf);
  } catch (err) {
    throw new CorruptObjectError(name, `unusable key derivation parameters: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  try {
    return masterKeyFrom(open(wrappingKey, 'master-key', Buffer.from(json.wrapped, 'base64')));
  } catch (err) {
    if (err instanceof SealOpenError) return undefined;
    throw new CorruptObjectError(name, err instanceof Error ? err.message : 'unreadable', { cause: err });
  }
}
