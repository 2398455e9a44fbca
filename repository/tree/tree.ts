/**
 * A tree is one directory listing, stored as a blob (type "tree") holding JSON. Names and
 * symlink targets are raw bytes: valid UTF-8 is stored as a string, anything else as base64
 * under a "_b64" key, so non-UTF-8 names and names with newlines round-trip exactly.
 */
export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

export interface NodeMeta {
  readonly name: Buffer;
  /** Permission bits with setuid/setgid/sticky (mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly user?: string | undefined;
  readonly group?: string | undefined;
  readonly mtimeNs: bigint;
  readonly atimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly inode: bigint;
  /** st_dev of the filesystem holding the node: with `inode`, identifies hardlinks. */
  readonly deviceId: bigint;
  readonly links: number;
}

export interface FileNode extends NodeMeta {
  readonly type: 'file';
  readonly size: number;
  /** Blob IDs of the file's chunks, in order. Empty for an empty file. */
  readonly content: readonly Buffer[];
}

export interface DirNode extends NodeMeta {
  readonly type: 'dir';
  readonly subtree: Buffer;
}

export interface SymlinkNode extends NodeMeta {
  readonly type: 'symlink';
  readonly linkTarget: Buffer;
}

export interface DeviceNode extends NodeMeta {
  readonly type: 'chardev' | 'blockdev';
  readonly rdev: bigint;
}

export interface SpecialNode extends NodeMeta {
  readonly type: 'fifo' | 'socket';
}

export type TreeNode = FileNode | DirNode | SymlinkNode | DeviceNode | SpecialNode;

export interface Tree {
  readonly nodes: readonly TreeNode[];
}

export class TreeFormatError extends Error {
  readonly code = 'ARCA_ERR_TREE_FORMAT';
}

const NODE_TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']);

function putBytes(out: Record<string, unknown>, key: string, bytes: Buffer): void {
  const text = bytes.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(bytes)) out[key] = text;
  else out[`${key}_b64`] = bytes.toString('base64');
}

function getBytes(json: Record<string, unknown>, key: string): Buffer | undefined {
  const text = json[key];
  if (typeof text === 'string') return Buffer.from(text, 'utf8');
  const b64 = json[`${key}_b64`];
  if (typeof b64 === 'string') return Buffer.from(b64, 'base64');
  return undefined;
}

/** A name is one path component: not empty, not "." or "..", no "/" and no NUL. */
export function isSafeName(name: Buffer): boolean {
  if (name.length === 0 || name.length > 4096) return false;
  if (name.equals(DOT) || name.equals(DOTDOT)) return false;
  return !name.includes(0x2f) && !name.includes(0);
}
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

export function encodeTree(tree: Tree): Buffer {
  const nodes = [...tree.nodes].sort((a, b) => Buffer.compare(a.name, b.name)).map((node) => {
    const out: Record<string, unknown> = { type: node.type };
    putBytes(out, 'name', node.name);
    out.mode = node.mode;
    out.uid = node.uid;
    out.gid = node.gid;
    if (node.user !== undefined) out.user = node.user;
    if (node.group !== undefined) out.group = node.group;
    out.mtime = node.mtimeNs.toString();
    out.atime = node.atimeNs.toString();
    out.ctime = node.ctimeNs.toString();
    out.inode = node.inode.toString();
    out.device_id = node.deviceId.toString();
    out.links = node.links;
    switch (node.type) {
      case 'file':
        out.size = node.size;
        out.content = node.content.map((id) => id.toString('hex'));
        break;
      case 'dir':
        out.subtree = node.subtree.toString('hex');
        break;
      case 'symlink':
        putBytes(out, 'linktarget', node.linkTarget);
        break;
      case 'chardev':
      case 'blockdev':
        out.rdev = node.rdev.toString();
        break;
      case 'fifo':
      case 'socket':
        break;
    }
    return out;
  });
  return Buffer.from(JSON.stringify({ nodes }));
}

function fail(detail: string): never {
  throw new TreeFormatError(detail);
}

function num(json: Record<string, unknown>, key: string): number {
  const v = json[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`field "${key}" is not a non-negative integer`);
  return v;
}

function big(json: Record<string, unknown>, key: string): bigint {
  const v = json[key];
  if (typeof v !== 'string' || !/^-?\d{1,30}$/.test(v)) fail(`field "${key}" is not an integer string`);
  return BigInt(v);
}

function hexId(value: unknown, what: string): Buffer {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) fail(`${what} is not a 64-digit hex ID`);
  return Buffer.from(value, 'hex');
}

function optString(json: Record<string, unknown>, key: string): string | undefined {
  const v = json[key];
  return typeof v === 'string' ? v : undefined;
}

/** Parses and validates a tree; rejects unsafe names, so a hostile snapshot cannot name "../x". */
export function decodeTree(bytes: Buffer): Tree {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    fail('not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as { nodes?: unknown }).nodes)) fail('no "nodes" array');
  const seen = new Set<string>();
  const nodes = ((parsed as { nodes: unknown[] }).nodes).map((raw): TreeNode => {
    if (typeof raw !== 'object' || raw === null) fail('a node is not an object');
    const json = raw as Record<string, unknown>;
    const name = getBytes(json, 'name') ?? fail('a node has no name');
    if (!isSafeName(name)) fail(`unsafe node name ${JSON.stringify(name.toString('utf8'))}`);
    const key = name.toString('hex');
    if (seen.has(key)) fail(`duplicate node name ${JSON.stringify(name.toString('utf8'))}`);
    seen.add(key);
    const type = json.type;
    if (typeof type !== 'string' || !NODE_TYPES.has(type)) fail(`unknown node type ${JSON.stringify(type)}`);
    const meta: NodeMeta = {
      name,
      mode: num(json, 'mode') & 0o7777,
      uid: num(json, 'uid'),
      gid: num(json, 'gid'),
      user: optString(json, 'user'),
      group: optString(json, 'group'),
      mtimeNs: big(json, 'mtime'),
      atimeNs: big(json, 'atime'),
      ctimeNs: big(json, 'ctime'),
      inode: big(json, 'inode'),
      deviceId: big(json, 'device_id'),
      links: num(json, 'links'),
    };
    switch (type) {
      case 'file': {
        const content = json.content;
        if (!Array.isArray(content)) fail('a file node has no content list');
        return { ...meta, type, size: num(json, 'size'), content: content.map((id) => hexId(id, 'a content ID')) };
      }
      case 'dir':
        return { ...meta, type, subtree: hexId(json.subtree, 'a subtree ID') };
      case 'symlink':
        return { ...meta, type, linkTarget: getBytes(json, 'linktarget') ?? fail('a symlink has no target') };
      case 'chardev':
      case 'blockdev':
        return { ...meta, type, rdev: big(json, 'rdev') };
      default:
        return { ...meta, type: type as 'fifo' | 'socket' };
    }
  });
  return { nodes };
}
