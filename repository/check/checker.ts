import { decodeBlob } from '../blob/blob-codec.ts';
import { DATA_PREFIX, idOfName, packName } from '../object-names.ts';
import { packMatchesId, parsePack } from '../pack/pack-reader.ts';
import type { Repository } from '../repository.ts';
import type { BlobLocation } from '../index/index.ts';
import type { CheckNotice, CheckProblem, CheckReport } from './report.ts';
import { listPlans } from '../maintenance/prune-plan.ts';
import { ObjectNotFoundError } from '../storage/storage.ts';

export interface CheckOptions {
  /** Which packs to read whole and verify blob by blob; `none` checks structure only. */
  readonly readData: ReadDataSelection;
}

export type ReadDataSelection =
  | { readonly kind: 'none' }
  | { readonly kind: 'all' }
  | { readonly kind: 'percent'; readonly percent: number }
  | { readonly kind: 'part'; readonly n: number; readonly of: number };

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Verifies a repository: indexes decode, every indexed pack exists and is long enough, every
 * snapshot's trees load and every file's blobs are indexed; optionally reads packs and re-hashes
 * every blob. Collects problems instead of stopping at the first, so the report is complete.
 */
export class Checker {
  private readonly repo: Repository;
  private readonly problems: CheckProblem[] = [];
  private readonly notices: CheckNotice[] = [];
  /** Blobs that are indexed but cannot be read: their pack is missing, or they failed to decode. */
  private readonly unusable = new Set<string>();
  /** Packs that a prune plan will delete: expected to be in no index. */
  private readonly plannedPacks = new Set<string>();

  constructor(repo: Repository) {
    this.repo = repo;
  }

  async run(options: CheckOptions): Promise<CheckReport> {
    await this.loadIndexes();
    const packSizes = await this.listPacks();
    this.checkPacksAgainstIndex(packSizes);
    const { packsRead, blobsRead } = await this.readData(options.readData, packSizes);
    // Last, so that damage found above is traced to the snapshots and files it affects.
    const snapshotsChecked = await this.checkSnapshots();
    return { problems: this.problems, notices: this.notices, snapshotsChecked, packsChecked: packSizes.size, packsRead, blobsRead, unusableBlobs: this.unusable };
  }

  private async loadIndexes(): Promise<void> {
    for (const { plan } of await listPlans(this.repo)) {
      for (const pack of plan.entries) for (const blob of pack.blobs) this.repo.retired.add(blob.id, { packId: pack.packId, ...blob });
      for (const pack of plan.packs) this.plannedPacks.add(pack);
    }
    await this.repo.forEachIndexFile((_name, packs) => {
      for (const pack of packs) for (const blob of pack.blobs) this.repo.index.add(blob.id, { packId: pack.packId, ...blob });
    }, { onError: (index, err) => { this.problems.push({ kind: 'index-unreadable', index, message: errorText(err) }); } });
  }

  private async listPacks(): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    for await (const obj of this.repo.storage.list(DATA_PREFIX)) {
      const id = idOfName(obj.name);
      if (id !== undefined) sizes.set(id, obj.size);
    }
    return sizes;
  }

  private checkPacksAgainstIndex(packSizes: Map<string, number>): void {
    const needed = new Map<string, { end: number; blobs: number }>();
    for (const index of [this.repo.index, this.repo.retired]) {
      for (const [, loc] of index.entries()) {
        const key = loc.packId.toString('hex');
        const n = needed.get(key) ?? { end: 0, blobs: 0 };
        n.end = Math.max(n.end, loc.offset + loc.length);
        n.blobs++;
        needed.set(key, n);
      }
    }
    for (const [pack, { end, blobs }] of needed) {
      const size = packSizes.get(pack);
      if (size === undefined) this.problems.push({ kind: 'pack-missing', pack, blobs });
      else if (size < end) this.problems.push({ kind: 'pack-too-short', pack, size, needed: end });
      else continue;
      for (const entry of this.repo.index.blobsInPack(Buffer.from(pack, 'hex'))) this.unusable.add(entry.id.toString('hex'));
    }
    for (const [pack, size] of packSizes) if (!needed.has(pack) && !this.plannedPacks.has(pack)) this.notices.push({ kind: 'pack-unindexed', pack, size });
  }

  private async checkSnapshots(): Promise<number> {
    const ids = await this.repo.listSnapshotIds();
    const checkedTrees = new Set<string>();
    for (const id of ids) {
      let tree: string;
      try {
        tree = (await this.repo.loadSnapshot(id)).tree;
      } catch (err) {
        if (err instanceof ObjectNotFoundError) continue; // Forgotten while the check ran.
        this.problems.push({ kind: 'snapshot-unreadable', snapshot: id, message: errorText(err) });
        continue;
      }
      await this.checkTree(id, Buffer.from(tree, 'hex'), '', checkedTrees);
    }
    return ids.length;
  }

  private async checkTree(snapshot: string, treeId: Buffer, path: string, checked: Set<string>): Promise<void> {
    const key = treeId.toString('hex');
    if (checked.has(key)) return;
    checked.add(key);
    let nodes;
    try {
      if (this.unusable.has(key)) throw new Error('its blob is missing or damaged in storage');
      nodes = (await this.repo.loadTree(treeId)).nodes;
    } catch (err) {
      this.problems.push({ kind: 'tree-unreadable', snapshot, path, tree: key, message: errorText(err) });
      return;
    }
    for (const node of nodes) {
      const childPath = `${path}/${node.name.toString()}`;
      if (node.type === 'dir') await this.checkTree(snapshot, node.subtree, childPath, checked);
      else if (node.type === 'file') {
        const missing = node.content.find((id) => this.repo.locate(id) === undefined);
        const damaged = node.content.find((id) => this.unusable.has(id.toString('hex')));
        if (missing) this.problems.push({ kind: 'file-data-missing', snapshot, path: childPath, blob: missing.toString('hex') });
        else if (damaged) this.problems.push({ kind: 'file-data-damaged', snapshot, path: childPath, blob: damaged.toString('hex') });
      }
    }
  }

  private selectPacks(selection: ReadDataSelection, packs: string[]): string[] {
    switch (selection.kind) {
      case 'none': return [];
      case 'all': return packs;
      case 'percent': {
        const count = Math.ceil((packs.length * selection.percent) / 100);
        return [...packs].sort(() => Math.random() - 0.5).slice(0, count);
      }
      case 'part':
        // Pack IDs are uniformly random, so their first 32 bits split the packs into even parts.
        return packs.filter((id) => (Number.parseInt(id.slice(0, 8), 16) % selection.of) + 1 === selection.n);
    }
  }

  private async readData(selection: ReadDataSelection, packSizes: Map<string, number>): Promise<{ packsRead: number; blobsRead: number }> {
    if (selection.kind === 'none') return { packsRead: 0, blobsRead: 0 };
    // Entries are gathered for the chosen packs only: for all of them they would take hundreds of
    // bytes per blob.
    const indexedPacks = this.repo.index.packIds().map((p) => p.toString('hex')).filter((p) => packSizes.has(p)).sort();
    const chosen = this.selectPacks(selection, indexedPacks);
    const chosenSet = new Set(chosen);
    const byPack = new Map<string, Array<{ id: Buffer } & BlobLocation>>();
    for (const [id, loc] of this.repo.index.entries()) {
      const key = loc.packId.toString('hex');
      if (!chosenSet.has(key)) continue;
      const list = byPack.get(key) ?? [];
      list.push({ id, ...loc });
      byPack.set(key, list);
    }
    let blobsRead = 0;
    for (const pack of chosen) {
      let bytes: Buffer;
      try {
        bytes = await this.repo.storage.get(packName(pack));
      } catch (err) {
        this.problems.push({ kind: 'pack-damaged', pack, message: errorText(err) });
        continue;
      }
      if (!packMatchesId(Buffer.from(pack, 'hex'), bytes)) this.problems.push({ kind: 'pack-damaged', pack, message: 'its content does not match its name' });
      let inHeader: Set<string> | undefined;
      try {
        inHeader = new Set(parsePack(this.repo.keys.encKey, bytes).map((b) => `${b.id.toString('hex')}@${b.offset}+${b.length}`));
      } catch (err) {
        this.problems.push({ kind: 'pack-damaged', pack, message: `its header cannot be read: ${errorText(err)}` });
      }
      // Blob by blob even when the pack as a whole failed, to say exactly which blobs are lost.
      for (const blob of byPack.get(pack) ?? []) {
        const blobHex = blob.id.toString('hex');
        if (inHeader && !inHeader.has(`${blobHex}@${blob.offset}+${blob.length}`)) {
          this.problems.push({ kind: 'blob-not-in-pack', pack, blob: blobHex });
        }
        try {
          decodeBlob(this.repo.keys, bytes.subarray(blob.offset, blob.offset + blob.length), blob.id, blob.rawLength);
          blobsRead++;
        } catch (err) {
          this.unusable.add(blobHex);
          this.problems.push({ kind: 'blob-damaged', pack, blob: blobHex, message: errorText(err) });
        }
      }
    }
    return { packsRead: chosen.length, blobsRead };
  }
}
