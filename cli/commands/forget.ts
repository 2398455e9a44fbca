import { UsageError } from '../../repository/errors.ts';
import { parseDuration } from '../../repository/maintenance/duration.ts';
import {
  applyPolicy, DEFAULT_GROUP_BY, describeGroupKey, describePolicy, groupSnapshots, isEmptyPolicy, parseGroupBy,
  validatePolicy, type GroupKey, type PolicyDecision, type RetentionPolicy,
} from '../../repository/maintenance/retention.ts';
import { forgetSnapshots } from '../../engine/forget-snapshots.ts';
import { newestFirst, type StoredSnapshot } from '../../repository/snapshot/snapshot.ts';
import { flag, SNAPSHOT_FILTER_OPTIONS, str, strs, type Command, type OptionValues } from '../command.ts';
import { openRepository } from '../context.ts';
import { printJson } from '../output.ts';
import { printPruneReport, pruneJson, pruneWith } from './prune.ts';
import { snapshotFilter } from './snapshots.ts';

const COUNT_OPTIONS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

export const forgetCommand: Command = {
  name: 'forget',
  args: '[SNAPSHOT...]',
  summary: 'remove snapshots by ID or by a retention policy (the data stays until prune)',
  details: [
    'Removes the SNAPSHOTs named, or applies the --keep-* policy to each group of the snapshots that match --host/--tag/--path',
    'and removes every snapshot that no option keeps (restic\'s semantics). Counts are periods that have snapshots, in UTC;',
    'if a count is left over, the oldest snapshot is kept as well.',
  ].join('\n'),
  options: {
    'keep-last': { type: 'string', value: 'N', description: 'keep the N newest snapshots' },
    'keep-hourly': { type: 'string', value: 'N', description: 'keep the newest snapshot of each of the last N hours that have snapshots; N=-1 or "unlimited" (write --keep-hourly=-1): no limit' },
    'keep-daily': { type: 'string', value: 'N', description: 'the same for days' },
    'keep-weekly': { type: 'string', value: 'N', description: 'the same for ISO weeks' },
    'keep-monthly': { type: 'string', value: 'N', description: 'the same for months' },
    'keep-yearly': { type: 'string', value: 'N', description: 'the same for years' },
    'keep-within': { type: 'string', value: 'DURATION', description: 'keep snapshots newer than DURATION before the newest snapshot; DURATION is like 1y2m3d4h (years, months, days, hours)' },
    'keep-tag': { type: 'string', multiple: true, value: 'TAG', description: 'keep snapshots with tag TAG; TAG=a,b keeps those with both a and b; repeatable (any of them keeps)' },
    ...SNAPSHOT_FILTER_OPTIONS,
    'group-by': {
      type: 'string', value: 'LIST',
      description: 'comma list of host, paths, tags and tag:KEY (default host,paths; "" for one group); tag:KEY groups by the values of KEY=VALUE tags, e.g. host,tag:namespace,tag:pod',
    },
    'dry-run': { type: 'boolean', description: 'only print what would be removed' },
    prune: { type: 'boolean', description: 'then run prune to delete the data no snapshot uses' },
    'max-unused': { type: 'string', value: 'PERCENT', description: 'with --prune: as prune\'s --max-unused (default 5%)' },
  },
  async run(values, positionals, global) {
    const policy = policyOf(values);
    const dryRun = flag(values, 'dry-run');
    const filter = snapshotFilter(values);
    const explicit = positionals.length > 0;
    if (explicit && !isEmptyPolicy(policy)) throw new UsageError('Give either SNAPSHOT arguments or --keep-* options, not both.');
    if (!explicit && isEmptyPolicy(policy)) throw new UsageError('No retention policy given, which would remove every snapshot: pass at least one --keep-* option, or name the snapshots to forget.');
    const groupSpec = str(values, 'group-by');
    const groupBy = groupSpec === undefined ? DEFAULT_GROUP_BY : parseGroupBy(groupSpec);
    const repo = await openRepository(global, { withIndex: false });

    const results: GroupResult[] = [];
    if (explicit) {
      const byId = new Map<string, StoredSnapshot>();
      for (const ref of positionals) {
        const s = await repo.resolveSnapshot(ref, filter);
        byId.set(s.id, s);
      }
      const remove = [...byId.values()].sort(newestFirst);
      results.push({ key: {}, decisions: remove.map((snapshot) => ({ snapshot, keep: false, reasons: [] })) });
    } else {
      const now = new Date();
      const snapshots = await repo.listSnapshots(filter);
      for (const group of groupSnapshots(snapshots, groupBy)) {
        results.push({ key: group.key, decisions: applyPolicy(group.snapshots, policy, now) });
      }
    }

    const removed = results.flatMap((g) => g.decisions.filter((d) => !d.keep).map((d) => d.snapshot.id));
    const human = !global.json && !global.quiet;
    if (human) printHuman(results, explicit ? undefined : policy);
    if (!dryRun) await forgetSnapshots(repo, removed);
    const andPrune = flag(values, 'prune');
    // One document: the groups, or with --prune the groups and prune's report together.
    if (global.json && !andPrune) printJson(results.map(jsonGroup));
    else if (human) {
      const what = plural(removed.length);
      process.stdout.write(removed.length === 0 ? 'no snapshots to remove\n' : dryRun ? `would remove ${what} (dry run, nothing was deleted)\n` : `removed ${what}\n`);
    }
    if (andPrune) {
      const report = await pruneWith({ 'dry-run': dryRun, 'max-unused': str(values, 'max-unused') }, global, repo);
      if (global.json) printJson({ groups: results.map(jsonGroup), prune: pruneJson(report, dryRun) });
      else printPruneReport(report, global, dryRun);
    }
    return 0;
  },
};

interface GroupResult {
  readonly key: GroupKey;
  readonly decisions: readonly PolicyDecision[];
}

/** A count option: a whole number, -1 or "unlimited"; 0 (the default) means not set. */
function countOf(values: OptionValues, name: string): number | undefined {
  const text = str(values, `keep-${name}`);
  if (text === undefined) return undefined;
  if (text === 'unlimited') return -1;
  if (!/^-?\d+$/.test(text.trim())) throw new UsageError(`--keep-${name} takes a number of snapshots, -1 or "unlimited"; got "${text}".`);
  return Number(text);
}

function policyOf(values: OptionValues): RetentionPolicy {
  const counts = Object.fromEntries(COUNT_OPTIONS.map((name) => [name, countOf(values, name)]));
  const within = str(values, 'keep-within');
  const policy: RetentionPolicy = {
    ...counts,
    within: within !== undefined ? parseDuration(within) : undefined,
    tags: strs(values, 'keep-tag').map((t) => t.split(',').map((s) => s.trim())),
  };
  validatePolicy(policy);
  return policy;
}

function snapshotJson({ id, snapshot }: StoredSnapshot): Record<string, unknown> {
  return { id, short_id: id.slice(0, 8), ...snapshot };
}

/** restic's ForgetGroup shape, plus tag_values when grouping by tag keys. */
function jsonGroup({ key, decisions }: GroupResult): Record<string, unknown> {
  return {
    host: key.host ?? null,
    paths: key.paths ?? null,
    tags: key.tags ?? null,
    ...(key.tagValues ? { tag_values: key.tagValues } : {}),
    keep: decisions.filter((d) => d.keep).map((d) => snapshotJson(d.snapshot)),
    remove: decisions.filter((d) => !d.keep).map((d) => snapshotJson(d.snapshot)),
    reasons: decisions.filter((d) => d.keep).map((d) => ({ snapshot: snapshotJson(d.snapshot), matches: d.reasons })),
  };
}

function printHuman(results: readonly GroupResult[], policy: RetentionPolicy | undefined): void {
  const out: string[] = [];
  if (policy) out.push(`Applying policy: ${describePolicy(policy)}`, '');
  if (results.length === 0) out.push('no snapshots match', '');
  for (const { key, decisions } of results) {
    if (policy) out.push(`snapshots for ${describeGroupKey(key)}:`);
    const keep = decisions.filter((d) => d.keep);
    const remove = decisions.filter((d) => !d.keep);
    if (keep.length > 0) out.push(`keep ${plural(keep.length)}:`, ...table(keep, true), '');
    if (remove.length > 0) out.push(`remove ${plural(remove.length)}:`, ...table(remove, false), '');
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

function plural(n: number): string {
  return `${n} snapshot${n === 1 ? '' : 's'}`;
}

function table(decisions: readonly PolicyDecision[], withReasons: boolean): string[] {
  const header = ['ID', 'Time', 'Host', 'Tags', ...(withReasons ? ['Reasons'] : []), 'Paths'];
  const rows = decisions.map(({ snapshot: { id, snapshot }, reasons }) => [
    id.slice(0, 8), snapshot.time.replace('T', ' ').slice(0, 19), snapshot.hostname, snapshot.tags.join(','),
    ...(withReasons ? [reasons.join(', ')] : []), snapshot.paths.join(', '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}
