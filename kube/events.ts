// Kubernetes Events (events.k8s.io/v1) about our objects and pods: what `kubectl describe` shows.
import { EventsV1Api, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from './logger.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { namespace?: string; name?: string; uid?: string; resourceVersion?: string };
}

export interface EventRecorderOptions {
  kc: KubeConfig;
  /** `arca.dev/agent` or `arca.dev/controller`. */
  controller: string;
  /** This process: the node name or the pod name. */
  instance: string;
  log: Logger;
}

/** Records Events; a failure to record is logged, never thrown: an Event is a courtesy, not state. */
export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly options: EventRecorderOptions;

  constructor(options: EventRecorderOptions) {
    this.api = options.kc.makeApiClient(EventsV1Api);
    this.options = options;
  }

  normal(target: EventTarget, reason: string, action: string, note: string): Promise<void> {
    return this.record(target, 'Normal', reason, action, note);
  }

  warning(target: EventTarget, reason: string, action: string, note: string): Promise<void> {
    return this.record(target, 'Warning', reason, action, note);
  }

  private async record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, action: string, note: string): Promise<void> {
    const { namespace, name, uid, resourceVersion } = target.metadata;
    if (namespace === undefined || name === undefined) return;
    try {
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${name}.` },
          eventTime: new V1MicroTime(),
          type,
          reason,
          action,
          note: note.slice(0, 1024),
          regarding: { apiVersion: target.apiVersion, kind: target.kind, namespace, name, uid, resourceVersion },
          reportingController: this.options.controller,
          reportingInstance: this.options.instance,
        },
      });
    } catch (err) {
      this.options.log.warn({ err: err instanceof Error ? err.message : String(err), reason, object: `${namespace}/${name}` }, 'could not record an Event');
    }
  }
}
