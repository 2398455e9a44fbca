import { describe, expect, test } from 'vitest';
import {
  expiryOf, issueCertificateAuthority, issueServingCertificate, renewalTimeOf, servingIsFresh,
} from '../../controller/webhook/certificate.ts';

describe('the webhook serving certificate', () => {
  test('lives as long as asked, and is due for renewal at two thirds of that life', async () => {
    const issued = new Date(Date.UTC(2026, 5, 1, 12));
    const ca = await issueCertificateAuthority('test-ca', issued);
    const hosts = ['arca-controller.arca-system.svc', '127.0.0.1'];
    const serving = await issueServingCertificate(ca, hosts, 90_000, issued);
    expect(expiryOf(serving.certPem)).toEqual(new Date(issued.getTime() + 90_000));
    expect(renewalTimeOf(serving)).toEqual(new Date(issued.getTime() + 60_000));
    expect(await servingIsFresh(serving, ca, hosts, new Date(issued.getTime() + 59_999))).toBe(true);
    expect(await servingIsFresh(serving, ca, hosts, new Date(issued.getTime() + 60_000))).toBe(false);
    // Other names, or another CA, also call for a new one.
    expect(await servingIsFresh(serving, ca, ['other.svc'], issued)).toBe(false);
    expect(await servingIsFresh(serving, await issueCertificateAuthority('other-ca', issued), hosts, issued)).toBe(false);
  });

  test('never outlives its CA', async () => {
    const issued = new Date(Date.UTC(2026, 5, 1, 12));
    const ca = await issueCertificateAuthority('test-ca', issued);
    const serving = await issueServingCertificate(ca, ['127.0.0.1'], 100 * 365 * 86_400_000, issued);
    expect(expiryOf(serving.certPem)).toEqual(expiryOf(ca.certPem));
  });
});
