// The webhook's TLS material, issued by the controller itself: a CA (kept for years, its
// certificate is the webhook configuration's caBundle) and a serving certificate signed by it for
// the Service's DNS names, renewed at two thirds of its life (certificate-renewal.ts).
// node:crypto makes keys but no X.509 certificates; @peculiar/x509 does.
import { createPrivateKey, KeyObject, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import 'reflect-metadata'; // tsyringe (under @peculiar/x509) needs it loaded first
import * as x509 from '@peculiar/x509';

const ALGORITHM: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY_MS = 86_400_000;
const CA_DAYS = 3650;
/** The default life of a serving certificate (--webhook-cert-validity). */
export const SERVING_VALIDITY_MS = 365 * DAY_MS;
/** A CA is issued anew when it has less than this left. */
const CA_RENEW_BEFORE_DAYS = 30;
/** notBefore lies this far back, for API servers whose clocks run behind ours. */
const BACKDATE_MS = 60_000;

/** PEM texts, as kept in the Secret. */
export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

export interface ServingCertificate {
  certPem: string;
  keyPem: string;
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
}

function keyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

export async function issueCertificateAuthority(commonName: string, now = new Date()): Promise<CertificateAuthority> {
  const keys = await keyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: keyPem(keys.privateKey) };
}

/** A serving certificate for `hosts` (DNS names or IP addresses), signed by `ca`, good for `validityMs` (at most as long as the CA). */
export async function issueServingCertificate(ca: CertificateAuthority, hosts: readonly string[], validityMs = SERVING_VALIDITY_MS, now = new Date()): Promise<ServingCertificate> {
  const [first] = hosts;
  if (first === undefined) throw new RangeError('A serving certificate needs at least one host name');
  const caCert = new x509.X509Certificate(ca.certPem);
  const signingKey = createPrivateKey(ca.keyPem).toCryptoKey(ALGORITHM, false, ['sign']);
  const keys = await keyPair();
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${first}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(Math.min(now.getTime() + validityMs, caCert.notAfter.getTime())),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(hosts.map((host) => ({ type: isIP(host) === 0 ? 'dns' as const : 'ip' as const, value: host }))),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: keyPem(keys.privateKey) };
}

/** True when `ca` is still good for long after now. */
export function caIsFresh(ca: CertificateAuthority, now = new Date()): boolean {
  return new x509.X509Certificate(ca.certPem).notAfter.getTime() - now.getTime() > CA_RENEW_BEFORE_DAYS * DAY_MS;
}

/** When a certificate (PEM) ends. */
export function expiryOf(certPem: string): Date {
  return new x509.X509Certificate(certPem).notAfter;
}

/** When `serving` is due for renewal: at two thirds of its life, so a failed renewal has a third of it to be retried. */
export function renewalTimeOf(serving: ServingCertificate): Date {
  const cert = new x509.X509Certificate(serving.certPem);
  const issued = cert.notBefore.getTime() + BACKDATE_MS;
  return new Date(issued + ((cert.notAfter.getTime() - issued) * 2) / 3);
}

/** True when `serving` was signed by `ca`, names exactly `hosts` and is not yet due for renewal. */
export async function servingIsFresh(serving: ServingCertificate, ca: CertificateAuthority, hosts: readonly string[], now = new Date()): Promise<boolean> {
  const cert = new x509.X509Certificate(serving.certPem);
  if (now.getTime() >= renewalTimeOf(serving).getTime()) return false;
  if (!(await cert.verify({ publicKey: new x509.X509Certificate(ca.certPem).publicKey, signatureOnly: true }))) return false;
  const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.map((n) => n.value) ?? [];
  return names.length === hosts.length && hosts.every((h) => names.includes(h));
}
