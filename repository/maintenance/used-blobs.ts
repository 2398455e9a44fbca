import { setTimeout as sleep } from 'node:timers/promises';
import { ArcaError } from '../errors.ts';
import { snapshotName } from '../object-names.ts';
import type { Repository } from '../repository.ts';
import { ObjectNotFoundError } from '../storage/storage.ts';
import { hashIdWords, ID_WORDS } from '../index/id-words.ts';

const ID_BYTES = 32;
const MIN_SLOTS = 64;
/** Grow when more than this share of the slots is used... */
const MAX_LOAD = 0.8;
/** ...by this factor, so between resizes 53-80% of the slots are used. */
const GROWTH = 1.5;
/** Scratch: the ID being looked up, as words (module-level, so lookups allocate nothing). */
const KEY = new Uint32Array(ID_WORDS);

/** Loads `id` into KEY; returns false for the all-zero ID. */
function loadKey(id: Buffer): boolean {
  if (id.length !== ID_BYTES) throw new RangeError(`a blob ID has ${ID_BYTES} bytes, not ${id.length}`);
  let any = 0;
  for (let k = 0; k < ID_WORDS; k++) {
    const w = id.readUInt32BE(k * 4);
    KEY[k] = w;
    any |= w;
  }
  return any !== 0;
}

/** Home slot of hash `h` in a table of `slots` slots (multiply-shift: works for every table size). */
function homeSlot(h: number, slots: number): number {
  return Math.floor((h / 0x1_0000_0000) * slots);
}

/**
 * A set of 32-byte blob IDs: one open-addressing hash table (linear probing) of 32-byte slots in
 * a Uint32Array: 40-60 bytes per ID between resizes (load 0.53-0.8; up to 100 while growing, old
 * and new table together). A Set of 32-character strings took about 76 (54.5 MiB for 750k IDs,
 * now 33.2 MiB; bench/prune-memory.ts measures prune as a whole). Exact: every ID is stored
 * whole, since a false "already marked" would skip a tree, and so delete what it references.
 */
export class BlobSet {
  /** `slotCount` slots of 8 words (the ID as big-endian words); all zero = empty. */
  private slots: Uint32Array;
  private slotCount: number;
  private count = 0;
  /** The all-zero ID cannot be stored in a slot (zero marks empty slots), so it has a flag. */
  private hasZero = false;

  constructor() {
    this.slotCount = MIN_SLOTS;
    this.slots = new Uint32Array(MIN_SLOTS * ID_WORDS);
  }

  /** Adds `id`; returns false if it was in the set already. */
  add(id: Buffer): boolean {
    if (!loadKey(id)) {
      if (this.hasZero) return false;
      this.hasZero = true;
      return true;
    }
    const found = this.find();
    if (found >= 0) return false;
    this.slots.set(KEY, (-found - 1) * ID_WORDS);
    this.count++;
    if (this.count > this.slotCount * MAX_LOAD) this.grow();
    return true;
  }

  has(id: Buffer): boolean {
    return loadKey(id) ? this.find() >= 0 : this.hasZero;
  }

  get size(): number {
    return this.count + (this.hasZero ? 1 : 0);
  }

  /** The slot holding KEY (>= 0), or -(the empty slot where it would go) - 1. KEY must not be zero. */
  private find(): number {
    const s = this.slots;
    const n = this.slotCount;
    const k0 = KEY[0] ?? 0;
    let i = homeSlot(hashIdWords(KEY, 0), n);
    for (;;) {
      const b = i * ID_WORDS;
      const w0 = s[b] ?? 0;
      if (w0 === k0) {
        let k = 1;
        while (k < ID_WORDS && s[b + k] === KEY[k]) k++;
        if (k === ID_WORDS) return i;
      }
      if (w0 === 0) {
        let k = 1;
        while (k < ID_WORDS && s[b + k] === 0) k++;
        if (k === ID_WORDS) return -i - 1;
      }
      i = i + 1 === n ? 0 : i + 1;
    }
  }

  private grow(): void {
    const old = this.slots;
    const oldCount = this.slotCount;
    const n = Math.ceil(oldCount * GROWTH);
    const s = new Uint32Array(n * ID_WORDS);
    for (let j = 0; j < oldCount; j++) {
      const ob = j * ID_WORDS;
      let used = 0;
      for (let k = 0; k < ID_WORDS; k++) used |= old[ob + k] ?? 0;
      if (used === 0) continue;
      let i = homeSlot(hashIdWords(old, ob), n);
      while (!isEmpty(s, i * ID_WORDS)) i = i + 1 === n ? 0 : i + 1;
      s.set(old.subarray(ob, ob + ID_WORDS), i * ID_WORDS);
    }
    this.slots = s;
    this.slotCount = n;
  }
}

function isEmpty(s: Uint32Array, b: number): boolean {
  for (let k = 0; k < ID_WORDS; k++) if ((s[b + k] ?? 0) !== 0) return false;
  return true;
}

export class MarkError extends ArcaError {
  constructor(snapshot: string, detail: string) {
    super('ARCA_ERR_MARK', `Cannot tell which data snapshot ${snapshot.slice(0, 8)} uses (${detail}); nothing was deleted. Run "arca check" and "arca repair" first.`);
  }
}

/**
 * How long a mark that cannot read a snapshot's trees waits for the snapshot to go before it gives
 * up. A backup revoked while it stalled can land its snapshot after a prune deleted the packs
 * behind it; its second confirmation takes the snapshot back at once (docs/format.md §9), and a
 * prune that read it in between must not take it for damage.
 */
const TAKEN_BACK_WAITS_MS = [0, 100, 400, 1500] as const;

/**
 * Adds to `used` every blob reachable from the given snapshots: their trees and the chunks of
 * their files. A tree that cannot be read stops the mark, because deleting without knowing what
 * is used could delete what is used; unless the snapshot itself is gone by then (forgotten, or
 * taken back by its writer): it uses nothing.
 */
export async function markSnapshots(repo: Repository, snapshotIds: readonly string[], used: BlobSet, log?: (line: string) => void): Promise<void> {
  for (const id of snapshotIds) {
    try {
      await markSnapshot(repo, id, used);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      if (await goneWithin(repo, id, () => log?.(`snapshot ${id.slice(0, 8)} cannot be read (${detail}); waiting for its writer to take it back`))) continue;
      throw new MarkError(id, detail);
    }
  }
}

async function markSnapshot(repo: Repository, id: string, used: BlobSet): Promise<void> {
  const pending: Buffer[] = [Buffer.from((await repo.loadSnapshot(id)).tree, 'hex')];
  for (let tree = pending.pop(); tree !== undefined; tree = pending.pop()) {
    if (!used.add(tree)) continue;
    for (const node of (await repo.loadTree(tree)).nodes) {
      if (node.type === 'dir') pending.push(node.subtree);
      else if (node.type === 'file') for (const chunk of node.content) used.add(chunk);
    }
  }
}

/** Whether snapshot `id` is deleted within TAKEN_BACK_WAITS_MS; `waiting` is called if it is there at first. */
async function goneWithin(repo: Repository, id: string, waiting: () => void): Promise<boolean> {
  for (const [n, wait] of TAKEN_BACK_WAITS_MS.entries()) {
    if (n === 1) waiting();
    await sleep(wait);
    try {
      await repo.storage.stat(snapshotName(id));
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return true;
      throw err;
    }
  }
  return false;
}
