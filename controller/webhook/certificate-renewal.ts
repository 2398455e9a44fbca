// Keeps the running webhook's certificate valid and trusted without a restart: at two thirds of
// its life the serving certificate is renewed through the shared Secret (a replica that renewed
// first is followed) and swapped into the TLS server for new connections, and the webhook
// configuration's caBundle is checked and put back on every turn, also when something else (a
// re-applied manifest) emptied it.
import type { KubeConfig } from '@kubernetes/client-node';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../kube/logger.ts';
import type { AdmissionServer } from './admission-server.ts';
import { ensureWebhookTls, patchCaBundle, type CertificateStoreOptions, type WebhookTls } from './certificate-store.ts';
import { expiryOf, renewalTimeOf } from './certificate.ts';

/** Longest wait between two looks at the caBundle (and the most a timer may wait in Node). */
const CHECK_EVERY_MS = 60_000;
/** Wait after a failed turn: renewal is due at two thirds of the life, so there is time to retry. */
const RETRY_MS = 5_000;

export interface CertificateRenewalOptions {
  kc: KubeConfig;
  store: CertificateStoreOptions;
  /** The MutatingWebhookConfiguration whose caBundle is kept. */
  configuration: string;
  server: AdmissionServer;
  registry: Registry;
  log: Logger;
}

export class CertificateRenewal {
  private readonly options: CertificateRenewalOptions;
  private current: WebhookTls;
  private timer: NodeJS.Timeout | undefined;
  private turn: Promise<void> | undefined;
  private stopped = false;

  constructor(options: CertificateRenewalOptions, current: WebhookTls) {
    this.options = options;
    this.current = current;
    const expiry = () => expiryOf(this.current.serving.certPem).getTime() / 1000;
    new Gauge({
      name: 'arca_webhook_certificate_expiry_timestamp_seconds', help: 'When the restore webhook\'s serving certificate expires (Unix time); renewed at two thirds of its life.',
      registers: [options.registry], collect() { this.set(expiry()); },
    });
  }

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.turn;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => { this.turn = this.runTurn(); }, Math.max(ms, 0));
  }

  private async runTurn(): Promise<void> {
    const { log, server, store, configuration, kc } = this.options;
    let wait = CHECK_EVERY_MS;
    try {
      if (Date.now() >= renewalTimeOf(this.current.serving).getTime()) {
        const renewed = await ensureWebhookTls(store);
        // The bundle first: the API server must trust a new CA before it meets a certificate it signed.
        await patchCaBundle(kc, configuration, renewed.caBundle, log);
        if (renewed.serving.certPem !== this.current.serving.certPem) {
          server.setTls(renewed.serving);
          log.info({ notAfter: expiryOf(renewed.serving.certPem).toISOString() }, 'serving a renewed webhook certificate');
        }
        this.current = renewed;
      } else {
        await patchCaBundle(kc, configuration, this.current.caBundle, log);
      }
      wait = Math.min(renewalTimeOf(this.current.serving).getTime() - Date.now(), CHECK_EVERY_MS);
    } catch (err) {
      wait = RETRY_MS;
      log.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: wait }, 'could not renew the webhook certificate or check its caBundle');
    }
    this.schedule(wait);
  }
}
