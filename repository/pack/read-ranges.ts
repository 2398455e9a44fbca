/** Where a blob sits in its pack. */
export interface PackSpan {
  readonly offset: number;
  readonly length: number;
}

export interface RangeLimits {
  /** Blobs at most this far apart are fetched in one read (the gap is read and thrown away)... */
  readonly maxGap: number;
  /** ...as long as the read stays within this many bytes; a larger blob is read alone. */
  readonly maxRange: number;
}

/**
 * Groups blobs of one pack into range reads: sorted by offset, neighbours joined while the gap
 * between them and the whole range stay within the limits. One read per group replaces one per
 * blob, which is what makes reading thousands of small blobs (trees, small files) cheap.
 */
export function coalesceSpans<T extends PackSpan>(spans: Iterable<T>, limits: RangeLimits): T[][] {
  const sorted = [...spans].sort((a, b) => a.offset - b.offset);
  const groups: T[][] = [];
  let group: T[] = [];
  for (const span of sorted) {
    const first = group[0];
    const last = group[group.length - 1];
    if (first && last && (span.offset - (last.offset + last.length) > limits.maxGap || span.offset + span.length - first.offset > limits.maxRange)) {
      groups.push(group);
      group = [];
    }
    group.push(span);
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** The byte range of the pack that a group from coalesceSpans covers. */
export function rangeOf(group: readonly PackSpan[]): PackSpan {
  const first = group[0];
  const last = group[group.length - 1];
  if (!first || !last) return { offset: 0, length: 0 };
  return { offset: first.offset, length: last.offset + last.length - first.offset };
}
