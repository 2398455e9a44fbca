import { describe, expect, it } from 'vitest';
import { JobQueue, type VolumeJob } from '../../agent/job-queue.ts';

/** A job that records when it starts and runs until released (or aborted). */
class Gate {
  readonly started: string[] = [];
  readonly aborted: string[] = [];
  private readonly releases = new Map<string, () => void>();

  job(key: string, createdAt: number): VolumeJob {
    return {
      key,
      createdAt: new Date(createdAt),
      run: (signal) => new Promise<void>((resolve) => {
        this.started.push(key);
        this.releases.set(key, resolve);
        signal.addEventListener('abort', () => { this.aborted.push(key); resolve(); }, { once: true });
      }),
    };
  }

  release(key: string): void {
    const release = this.releases.get(key);
    if (release === undefined) throw new Error(`${key} is not running`);
    release();
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function newQueue(max: number): { queue: JobQueue; errors: [string, unknown][] } {
  const errors: [string, unknown][] = [];
  return { queue: new JobQueue(max, (key, err) => { errors.push([key, err]); }), errors };
}

describe('JobQueue', () => {
  it('runs at most maxConcurrent jobs, the rest in creation order, not arrival order', async () => {
    const gate = new Gate();
    const { queue } = newQueue(2);
    queue.add(gate.job('d', 4000));
    queue.add(gate.job('a', 1000));
    await tick();
    // The first two to arrive start at once; the later arrivals wait and go oldest first.
    queue.add(gate.job('c', 3000));
    queue.add(gate.job('b', 2000));
    queue.add(gate.job('b2', 2000));
    await tick();
    expect(gate.started).toEqual(['d', 'a']);
    expect([queue.runningCount, queue.waitingCount]).toEqual([2, 3]);
    gate.release('d');
    await tick();
    expect(gate.started).toEqual(['d', 'a', 'b']);
    gate.release('a');
    gate.release('b');
    await tick();
    expect(gate.started).toEqual(['d', 'a', 'b', 'b2', 'c']);
    gate.release('b2');
    gate.release('c');
    await queue.idle();
    expect([queue.runningCount, queue.waitingCount]).toEqual([0, 0]);
  });

  it('takes a key once while it is queued or running, and again after it finished', async () => {
    const gate = new Gate();
    const { queue } = newQueue(1);
    expect(queue.add(gate.job('a', 1))).toBe(true);
    expect(queue.add(gate.job('b', 2))).toBe(true);
    expect(queue.add(gate.job('a', 1))).toBe(false);
    expect(queue.add(gate.job('b', 2))).toBe(false);
    await tick();
    gate.release('a');
    await tick();
    expect(queue.has('a')).toBe(false);
    expect(queue.add(gate.job('a', 1))).toBe(true);
    gate.release('b');
    await tick();
    gate.release('a');
    await queue.idle();
    expect(gate.started).toEqual(['a', 'b', 'a']);
  });

  it('cancels by key: a waiting job never starts, a running one sees its signal, others go on', async () => {
    const gate = new Gate();
    const { queue } = newQueue(1);
    queue.add(gate.job('a', 1));
    queue.add(gate.job('b', 2));
    queue.add(gate.job('c', 3));
    await tick();
    expect(queue.cancel('b')).toBe('dequeued');
    expect(queue.cancel('a', new Error('spec.cancel'))).toBe('aborted');
    expect(queue.cancel('nope')).toBe('unknown');
    await tick();
    expect(gate.aborted).toEqual(['a']);
    expect(gate.started).toEqual(['a', 'c']);
    gate.release('c');
    await queue.idle();
    expect(gate.started).not.toContain('b');
  });

  it('passes a failing job to onError and keeps going', async () => {
    const { queue, errors } = newQueue(1);
    const ran: string[] = [];
    queue.add({ key: 'bad', createdAt: new Date(1), run: () => Promise.reject(new Error('boom')) });
    queue.add({ key: 'good', createdAt: new Date(2), run: () => { ran.push('good'); return Promise.resolve(); } });
    await queue.idle();
    expect(errors).toHaveLength(1);
    expect(errors[0]?.[0]).toBe('bad');
    expect(String(errors[0]?.[1])).toContain('boom');
    expect(ran).toEqual(['good']);
  });

  it('close() aborts the running jobs, waits for them, and returns the ones that never started', async () => {
    const gate = new Gate();
    const { queue } = newQueue(2);
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) queue.add(gate.job(key, i));
    await tick();
    expect(await queue.close(new Error('SIGTERM'))).toEqual(['c', 'd']);
    expect(gate.aborted.sort()).toEqual(['a', 'b']);
    expect(queue.runningCount).toBe(0);
    expect(queue.add(gate.job('e', 9))).toBe(false);
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new JobQueue(0, () => undefined)).toThrow(/positive integer/);
  });
});
