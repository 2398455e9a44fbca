// SIGTERM and SIGINT become an AbortSignal that entry points pass down; a second signal exits at once.

export interface ShutdownSignal {
  readonly signal: AbortSignal;
  /** Resolves with the signal's name when the first one arrives. */
  readonly requested: Promise<NodeJS.Signals>;
  /** Removes the handlers (after a clean stop). */
  dispose(): void;
}

export function shutdownOnSignals(onSecond: (name: NodeJS.Signals) => void): ShutdownSignal {
  const controller = new AbortController();
  let resolveRequested!: (name: NodeJS.Signals) => void;
  const requested = new Promise<NodeJS.Signals>((resolve) => { resolveRequested = resolve; });
  const handler = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      onSecond(name);
      return;
    }
    controller.abort(new Error(`received ${name}`));
    resolveRequested(name);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return {
    signal: controller.signal,
    requested,
    dispose() {
      process.off('SIGTERM', handler);
      process.off('SIGINT', handler);
    },
  };
}
