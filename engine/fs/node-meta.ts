import { readFileSync } from 'node:fs';
import type { NodeMeta } from '../../repository/tree/tree.ts';
import type { EntryStat } from './entry-stat.ts';

/** Owner names from /etc/passwd and /etc/group, read once; numeric IDs stay the truth. */
function readNames(file: string): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id && /^\d+$/.test(id)) names.set(Number(id), name);
    }
  } catch {
    // No such file (minimal containers): names are optional.
  }
  return names;
}

let users: Map<number, string> | undefined;
let groups: Map<number, string> | undefined;

/**
 * The metadata every node records, from an lstat (EntryStat). Access times change
 * whenever anything reads a file or lists a directory, so unless asked for they are recorded as
 * the modification time: otherwise every backup would store every tree anew.
 */
export function metaOf(name: Buffer, st: EntryStat, withAtime = false): NodeMeta {
  users ??= readNames('/etc/passwd');
  groups ??= readNames('/etc/group');
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  return {
    name,
    mode: Number(st.mode) & 0o7777,
    uid,
    gid,
    user: users.get(uid),
    group: groups.get(gid),
    mtimeNs: st.mtimeNs,
    atimeNs: withAtime ? st.atimeNs : st.mtimeNs,
    ctimeNs: st.ctimeNs,
    inode: st.ino,
    deviceId: st.dev,
    links: Number(st.nlink),
  };
}
