import { createPrivateKey, createPublicKey } from 'node:crypto';
import { csrKeyFingerprint, generateDeviceCredentials, validateCsr } from '../../src/shared/csr';
import { ValidationError } from '../../src/shared/errors';
import { fingerprintSpki } from '../../src/shared/iot-registry';

const UUID = 'ab'.repeat(16);

describe('device credentials', () => {
  it.each(['ec-p256', 'rsa-2048'] as const)(
    'generates a %s key whose CSR names the device and carries the same key',
    async (algorithm) => {
      const credentials = await generateDeviceCredentials(UUID, algorithm);

      const spki = createPublicKey(credentials.privateKeyPem).export({
        type: 'spki',
        format: 'der',
      });
      expect(fingerprintSpki(spki)).toBe(credentials.keyFingerprint);
      expect(csrKeyFingerprint(credentials.csrPem)).toBe(credentials.keyFingerprint);
      expect(await validateCsr(credentials.csrPem, UUID)).toBe(credentials.keyFingerprint);
      // The traditional encodings AWS IoT itself hands out: SEC1 for EC, PKCS#1 for RSA.
      const key = createPrivateKey(credentials.privateKeyPem);
      expect(key.asymmetricKeyType).toBe(algorithm === 'ec-p256' ? 'ec' : 'rsa');
      const traditional = key.export({
        format: 'pem',
        type: algorithm === 'ec-p256' ? 'sec1' : 'pkcs1',
      });
      expect(credentials.privateKeyPem).toBe(traditional);
    },
  );

  it('refuses a CSR whose CN names another device with invalid_csr', async () => {
    const other = await generateDeviceCredentials('cd'.repeat(16), 'ec-p256');
    await expect(validateCsr(other.csrPem, UUID)).rejects.toMatchObject({
      code: 'invalid_csr',
      status: 400,
    });
  });

  it('refuses text that is not a CSR', async () => {
    await expect(validateCsr('hello', UUID)).rejects.toBeInstanceOf(ValidationError);
  });
});
