import { UsageError } from '../../repository/errors.ts';
import { observeLeases, revokeLease, type ObservedLease } from '../../repository/maintenance/leases.ts';
import { flag, type Command } from '../command.ts';
import { openRepository } from '../context.ts';
import { leaseOptionsFromEnv } from '../lease-options.ts';
import { printJson } from '../output.ts';

type LeaseState = 'live' | 'stale' | 'revoked';

/**
 * `arca leases` lists the writers' leases with their age by the storage's clock; `arca leases
 * remove --stale` revokes those not renewed for the lease lifetime (what a prune does anyway),
 * `arca leases remove ID...` revokes the given ones. Revoking is always safe: a holder that is
 * in fact alive finds out before its next write and fails without writing (docs/format.md §9).
 */
export const leasesCommand: Command = {
  name: 'leases',
  args: '[remove (--stale | ID...)]',
  summary: 'list the leases of running writers, or revoke stale ones (e.g. left by a killed process)',
  details: 'Every backup, copy, repair and prune holds a lease while it runs (docs/format.md §9). Without an action, lists them with the time since each was last renewed, by the storage\'s clock: live, stale (not renewed for the lease lifetime: its process died or is stalled) or revoked. A prune revokes stale leases by itself; "remove --stale" does it at once, "remove ID" revokes a given lease (at least 8 hex digits) even if it is live. Revoking never loses data: a holder that is still running notices before its next write, writes nothing more, and exits with code 11.',
  actions: ['remove'],
  options: {
    stale: { type: 'boolean', description: 'remove: revoke every lease not renewed for the lease lifetime' },
  },
  async run(values, positionals, global) {
    const [action, ...ids] = positionals;
    if (action !== undefined && action !== 'remove') throw new UsageError(`Unknown leases action "${action}"; use "arca leases" or "arca leases remove --stale | ID...".`);
    const stale = flag(values, 'stale');
    if (action === 'remove' && stale === (ids.length > 0)) throw new UsageError('Give either --stale or lease IDs to "arca leases remove".');
    const repo = await openRepository(global, { withIndex: false, cache: false });
    const { ttlMs } = leaseOptionsFromEnv().timing;
    const observed = await observeLeases(repo);
    const stateOf = (lease: ObservedLease): LeaseState => (lease.revoked ? 'revoked' : observed.ageOf(lease) > ttlMs ? 'stale' : 'live');
    if (action === undefined) {
      const rows = observed.leases.map((lease) => ({ ...lease.record, age_seconds: Math.round(observed.ageOf(lease) / 1000), state: stateOf(lease) }));
      if (global.json) printJson(rows);
      else if (!global.quiet) {
        process.stdout.write(rows.length === 0 ? 'no leases\n' : `${rows.map((r) => `${r.id.slice(0, 8)}  ${r.kind.padEnd(16)} ${r.hostname} pid ${r.pid}  started ${r.started}  renewed ${r.age_seconds} s ago  ${r.state}`).join('\n')}\n`);
      }
      return 0;
    }
    const chosen = stale
      ? observed.leases.filter((lease) => stateOf(lease) !== 'live')
      : ids.map((id) => {
        const matches = observed.leases.filter((lease) => lease.record.id.startsWith(id));
        if (matches.length !== 1 || id.length < 8) throw new UsageError(`"${id}" names ${matches.length === 0 ? 'no lease' : 'several leases'}; give at least 8 hex digits of an ID that "arca leases" lists.`);
        return matches[0] as ObservedLease;
      });
    for (const lease of chosen) await revokeLease(repo, lease.record.id);
    if (global.json) printJson({ removed: chosen.map((l) => l.record.id) });
    else if (!global.quiet) process.stdout.write(`removed ${chosen.length} lease${chosen.length === 1 ? '' : 's'}\n`);
    return 0;
  },
};
