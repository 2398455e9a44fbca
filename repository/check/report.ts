/** One problem `arca check` found. Every kind names the objects involved so a user can act. */
export type CheckProblem =
  | { readonly kind: 'index-unreadable'; readonly index: string; readonly message: string }
  | { readonly kind: 'pack-missing'; readonly pack: string; readonly blobs: number }
  | { readonly kind: 'pack-too-short'; readonly pack: string; readonly size: number; readonly needed: number }
  | { readonly kind: 'pack-damaged'; readonly pack: string; readonly message: string }
  | { readonly kind: 'blob-damaged'; readonly pack: string; readonly blob: string; readonly message: string }
  | { readonly kind: 'blob-not-in-pack'; readonly pack: string; readonly blob: string }
  | { readonly kind: 'snapshot-unreadable'; readonly snapshot: string; readonly message: string }
  | { readonly kind: 'tree-unreadable'; readonly snapshot: string; readonly path: string; readonly tree: string; readonly message: string }
  | { readonly kind: 'file-data-missing'; readonly snapshot: string; readonly path: string; readonly blob: string }
  | { readonly kind: 'file-data-damaged'; readonly snapshot: string; readonly path: string; readonly blob: string };

/** Findings that are not damage, such as packs an interrupted backup left without an index. */
export type CheckNotice = { readonly kind: 'pack-unindexed'; readonly pack: string; readonly size: number };

export interface CheckReport {
  readonly problems: CheckProblem[];
  readonly notices: CheckNotice[];
  readonly snapshotsChecked: number;
  readonly packsChecked: number;
  readonly packsRead: number;
  readonly blobsRead: number;
  /** IDs (hex) of indexed blobs that cannot be read: their pack is missing, or they are damaged. */
  readonly unusableBlobs: ReadonlySet<string>;
}

export function describeProblem(p: CheckProblem): string {
  switch (p.kind) {
    case 'index-unreadable': return `index ${p.index} cannot be read: ${p.message}`;
    case 'pack-missing': return `pack ${p.pack} is missing (${p.blobs} blobs of the index point into it); if it is gone for good, run "arca repair index", then "arca repair snapshots"`;
    case 'pack-too-short': return `pack ${p.pack} has ${p.size} bytes but the index needs ${p.needed}`;
    case 'pack-damaged': return `pack ${p.pack} is damaged: ${p.message}`;
    case 'blob-damaged': return `blob ${p.blob} in pack ${p.pack} is damaged: ${p.message}`;
    case 'blob-not-in-pack': return `blob ${p.blob} is indexed in pack ${p.pack} but that pack's header does not list it there`;
    case 'snapshot-unreadable': return `snapshot ${p.snapshot} cannot be read: ${p.message}`;
    case 'tree-unreadable': return `snapshot ${p.snapshot.slice(0, 8)}: directory ${p.path || '/'} (tree ${p.tree}) cannot be read: ${p.message}`;
    case 'file-data-missing': return `snapshot ${p.snapshot.slice(0, 8)}: file ${p.path} needs blob ${p.blob}, which is in no index`;
    case 'file-data-damaged': return `snapshot ${p.snapshot.slice(0, 8)}: file ${p.path} needs blob ${p.blob}, which is missing or damaged in storage`;
  }
}

export function describeNotice(n: CheckNotice): string {
  return `pack ${n.pack} (${n.size} bytes) is in no index; an interrupted backup left it, and prune will remove it`;
}
