import { createHash, X509Certificate } from 'node:crypto';

/** sha256 (hex) of a DER SubjectPublicKeyInfo: how keys are matched across CSRs and certificates. */
export function fingerprintSpki(spkiDer: Uint8Array): string {
  return createHash('sha256').update(spkiDer).digest('hex');
}

/** sha256 (hex) of a PEM certificate's public key. */
export function certificateKeyFingerprint(certificatePem: string): string {
  const key = new X509Certificate(certificatePem).publicKey;
  return fingerprintSpki(key.export({ type: 'spki', format: 'der' }));
}
