import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CertificateStatus,
  CreateCertificateFromCsrCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  type IoTClient,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  ListThingPrincipalsCommand,
  ResourceNotFoundException,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { classifyAwsError } from './aws-errors';
import { certificateKeyFingerprint } from './fingerprint';

export { certificateKeyFingerprint, fingerprintSpki } from './fingerprint';

export interface IssuedCertificate {
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly certificatePem: string;
}

export interface FoundCertificate {
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly keyFingerprint: string;
}

/** Port: the IoT Core registry calls the worker and the CLI make. */
export interface IotRegistry {
  /** Creates the thing unless it exists; true when it was created. */
  ensureThing(thingName: string): Promise<boolean>;
  thingExists(thingName: string): Promise<boolean>;
  createCertificateFromCsr(csrPem: string): Promise<IssuedCertificate>;
  attachPolicy(policyName: string, certificateArn: string): Promise<void>;
  attachThingPrincipal(thingName: string, certificateArn: string): Promise<void>;
  /** The thing's principals, or undefined when the thing does not exist. */
  listThingPrincipals(thingName: string): Promise<string[] | undefined>;
  /** Detaches from things and the policy, deactivates and deletes; tolerates parts already gone. */
  retireCertificate(certificateArn: string, policyName: string): Promise<void>;
  /** Deletes the thing; tolerates it being gone already. */
  deleteThing(thingName: string): Promise<void>;
  describeCertificate(
    certificateId: string,
  ): Promise<{ status: string; certificatePem: string } | undefined>;
  /**
   * Certificates created between `since` and `until` whose public key has one of
   * `fingerprints`: how an interrupted issuing attempt is found exactly, never by guessing.
   */
  findCertificatesByKey(
    fingerprints: ReadonlySet<string>,
    since: Date,
    until: Date,
  ): Promise<FoundCertificate[]>;
}

export function certificateIdFromArn(arn: string): string {
  return arn.slice(arn.lastIndexOf('/') + 1);
}

/** IotRegistry on the AWS SDK v3 IoT client; SDK errors become Transient/PermanentError. */
export class AwsIotRegistry implements IotRegistry {
  constructor(private readonly iot: IoTClient) {}

  private async call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error: unknown) {
      throw classifyAwsError(error, `iot:${operation}`);
    }
  }

  private async tolerateMissing(operation: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (error: unknown) {
      if (error instanceof ResourceNotFoundException) return;
      throw classifyAwsError(error, `iot:${operation}`);
    }
  }

  async thingExists(thingName: string): Promise<boolean> {
    try {
      await this.iot.send(new DescribeThingCommand({ thingName }));
      return true;
    } catch (error: unknown) {
      if (error instanceof ResourceNotFoundException) return false;
      throw classifyAwsError(error, 'iot:DescribeThing');
    }
  }

  async ensureThing(thingName: string): Promise<boolean> {
    if (await this.thingExists(thingName)) return false;
    await this.call('CreateThing', () => this.iot.send(new CreateThingCommand({ thingName })));
    return true;
  }

  async createCertificateFromCsr(csrPem: string): Promise<IssuedCertificate> {
    const out = await this.call('CreateCertificateFromCsr', () =>
      this.iot.send(
        new CreateCertificateFromCsrCommand({
          certificateSigningRequest: csrPem,
          setAsActive: true,
        }),
      ),
    );
    if (!out.certificateId || !out.certificateArn || !out.certificatePem) {
      throw new Error('CreateCertificateFromCsr answered without a certificate');
    }
    return {
      certificateId: out.certificateId,
      certificateArn: out.certificateArn,
      certificatePem: out.certificatePem,
    };
  }

  async attachPolicy(policyName: string, certificateArn: string): Promise<void> {
    await this.call('AttachPolicy', () =>
      this.iot.send(new AttachPolicyCommand({ policyName, target: certificateArn })),
    );
  }

  async attachThingPrincipal(thingName: string, certificateArn: string): Promise<void> {
    await this.call('AttachThingPrincipal', () =>
      this.iot.send(new AttachThingPrincipalCommand({ thingName, principal: certificateArn })),
    );
  }

  async listThingPrincipals(thingName: string): Promise<string[] | undefined> {
    const principals: string[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const out = await this.iot.send(new ListThingPrincipalsCommand({ thingName, nextToken }));
        principals.push(...(out.principals ?? []));
        nextToken = out.nextToken;
      } while (nextToken);
    } catch (error: unknown) {
      if (error instanceof ResourceNotFoundException) return undefined;
      throw classifyAwsError(error, 'iot:ListThingPrincipals');
    }
    return principals;
  }

  async retireCertificate(certificateArn: string, policyName: string): Promise<void> {
    const certificateId = certificateIdFromArn(certificateArn);
    let things: string[];
    try {
      const out = await this.iot.send(
        new ListPrincipalThingsCommand({ principal: certificateArn }),
      );
      things = out.things ?? [];
    } catch (error: unknown) {
      if (error instanceof ResourceNotFoundException) return;
      throw classifyAwsError(error, 'iot:ListPrincipalThings');
    }
    for (const thingName of things) {
      await this.tolerateMissing('DetachThingPrincipal', () =>
        this.iot.send(new DetachThingPrincipalCommand({ thingName, principal: certificateArn })),
      );
    }
    await this.tolerateMissing('DetachPolicy', () =>
      this.iot.send(new DetachPolicyCommand({ policyName, target: certificateArn })),
    );
    await this.tolerateMissing('UpdateCertificate', () =>
      this.iot.send(
        new UpdateCertificateCommand({ certificateId, newStatus: CertificateStatus.INACTIVE }),
      ),
    );
    await this.tolerateMissing('DeleteCertificate', () =>
      this.iot.send(new DeleteCertificateCommand({ certificateId, forceDelete: true })),
    );
  }

  async deleteThing(thingName: string): Promise<void> {
    await this.tolerateMissing('DeleteThing', () =>
      this.iot.send(new DeleteThingCommand({ thingName })),
    );
  }

  async describeCertificate(certificateId: string) {
    try {
      const out = await this.iot.send(new DescribeCertificateCommand({ certificateId }));
      const description = out.certificateDescription;
      return {
        status: description?.status ?? 'UNKNOWN',
        certificatePem: description?.certificatePem ?? '',
      };
    } catch (error: unknown) {
      if (error instanceof ResourceNotFoundException) return undefined;
      throw classifyAwsError(error, 'iot:DescribeCertificate');
    }
  }

  async findCertificatesByKey(
    fingerprints: ReadonlySet<string>,
    since: Date,
    until: Date,
  ): Promise<FoundCertificate[]> {
    if (fingerprints.size === 0) return [];
    // Newest first; only certificates created inside the window in which the interrupted
    // attempts could have created theirs are described (a minute of clock skew either side).
    const horizon = since.getTime() - 60_000;
    const latest = until.getTime() + 60_000;
    const found: FoundCertificate[] = [];
    let marker: string | undefined;
    do {
      const page = await this.call('ListCertificates', () =>
        this.iot.send(
          new ListCertificatesCommand({ ascendingOrder: false, pageSize: 250, marker }),
        ),
      );
      const recent = (page.certificates ?? []).filter((c) => {
        const created = c.creationDate?.getTime();
        return created === undefined || (created >= horizon && created <= latest);
      });
      for (const summary of recent) {
        if (!summary.certificateId || !summary.certificateArn) continue;
        const described = await this.describeCertificate(summary.certificateId);
        if (!described?.certificatePem) continue;
        const keyFingerprint = certificateKeyFingerprint(described.certificatePem);
        if (fingerprints.has(keyFingerprint)) {
          found.push({
            certificateId: summary.certificateId,
            certificateArn: summary.certificateArn,
            keyFingerprint,
          });
        }
      }
      const oldest = page.certificates?.at(-1)?.creationDate?.getTime();
      marker = oldest !== undefined && oldest < horizon ? undefined : page.nextMarker;
    } while (marker);
    return found;
  }
}
