/** Counts permits; `acquire` waits while none is free. Used to bound work in flight. */
export class Semaphore {
  private free: number;
  private readonly waiters: Array<() => void> = [];

  constructor(permits: number) {
    this.free = permits;
  }

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }

  async with<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}
