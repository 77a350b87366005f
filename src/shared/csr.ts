import 'reflect-metadata';
import { createPrivateKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { ValidationError } from './errors';
import { fingerprintSpki } from './fingerprint';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export type DeviceKeyAlgorithm = 'ec-p256' | 'rsa-2048';

/** A fresh key pair and a CSR for it; the private key exists only in this object. */
export interface GeneratedCredentials {
  readonly csrPem: string;
  readonly privateKeyPem: string;
  readonly keyFingerprint: string;
}

const ALGORITHMS = {
  'ec-p256': { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  'rsa-2048': {
    name: 'RSASSA-PKCS1-v1_5',
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: 'SHA-256',
  },
} as const;

/** Generates a device key pair and a CSR whose subject CN is the device uuid. */
export async function generateDeviceCredentials(
  uuid: string,
  algorithm: DeviceKeyAlgorithm,
): Promise<GeneratedCredentials> {
  const alg = ALGORITHMS[algorithm];
  const keys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${uuid}`,
    keys: keys as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: alg,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  // Traditional PEM ("EC PRIVATE KEY" / "RSA PRIVATE KEY"), the form AWS IoT itself hands out.
  const privateKeyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: algorithm === 'ec-p256' ? 'sec1' : 'pkcs1' })
    .toString();
  return {
    csrPem: csr.toString('pem'),
    privateKeyPem,
    keyFingerprint: fingerprintSpki(new Uint8Array(csr.publicKey.rawData)),
  };
}

/**
 * Checks a device-supplied CSR: it parses, its signature verifies (proof of possession), its key
 * is RSA >= 2048 or EC P-256/P-384, and a subject CN, if any, equals the uuid.
 * Returns the key fingerprint. Throws ValidationError `invalid_csr`.
 */
export async function validateCsr(csrPem: string, uuid: string): Promise<string> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem.trim());
  } catch {
    throw new ValidationError('invalid_csr', 'csr is not a PEM PKCS#10 certificate request');
  }
  let signatureValid = false;
  try {
    signatureValid = await csr.verify();
  } catch {
    signatureValid = false;
  }
  if (!signatureValid) {
    throw new ValidationError('invalid_csr', 'the csr signature does not verify');
  }
  const algorithm = csr.publicKey.algorithm as {
    name: string;
    namedCurve?: string;
    modulusLength?: number;
  };
  const keyOk =
    algorithm.name === 'ECDSA'
      ? algorithm.namedCurve === 'P-256' || algorithm.namedCurve === 'P-384'
      : algorithm.name.startsWith('RSA') && (algorithm.modulusLength ?? 0) >= 2048;
  if (!keyOk) {
    throw new ValidationError(
      'invalid_csr',
      'the csr key must be RSA of at least 2048 bits or EC P-256/P-384',
    );
  }
  const commonNames = csr.subjectName.getField('CN');
  if (commonNames.length > 0 && commonNames.some((cn) => cn !== uuid)) {
    throw new ValidationError('invalid_csr', 'the csr subject CN must equal the device uuid');
  }
  return fingerprintSpki(new Uint8Array(csr.publicKey.rawData));
}

/** Fingerprint of a CSR already validated. */
export function csrKeyFingerprint(csrPem: string): string {
  const csr = new x509.Pkcs10CertificateRequest(csrPem.trim());
  return fingerprintSpki(new Uint8Array(csr.publicKey.rawData));
}
