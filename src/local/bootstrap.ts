import { CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import {
  CreatePolicyCommand,
  GetPolicyCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import type { AwsClients } from '../shared/aws-clients';

export interface StackResourceNames {
  readonly tableName: string;
  readonly queueName: string;
  readonly dlqName: string;
  readonly policyName: string;
}

export interface StackResources {
  readonly tableName: string;
  readonly queueUrl: string;
  readonly dlqUrl: string;
  readonly policyName: string;
}

export interface BootstrapOptions {
  readonly maxReceiveCount: number;
  readonly visibilityTimeoutSeconds: number;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT policy variable, not a template
const THING_NAME_VARIABLE = '${iot:Connection.Thing.ThingName}';

/** The device policy the local stack installs (the CDK app creates the same shape on AWS). */
export const LOCAL_DEVICE_POLICY = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Action: 'iot:Connect',
      Resource: `arn:aws:iot:*:*:client/${THING_NAME_VARIABLE}`,
    },
    {
      Effect: 'Allow',
      Action: ['iot:Publish', 'iot:Receive'],
      Resource: `arn:aws:iot:*:*:topic/balena/${THING_NAME_VARIABLE}/*`,
    },
  ],
};

/**
 * Creates what the CDK app creates on AWS, in the emulator: the table (pk/sk, GSI `gsi1`), the
 * work queue with its DLQ redrive, and the device IoT policy. Idempotent.
 */
export async function bootstrapResources(
  aws: AwsClients,
  names: StackResourceNames,
  options: BootstrapOptions,
): Promise<StackResources> {
  await createTable(aws, names.tableName);
  const dlq = await aws.sqs.send(
    new CreateQueueCommand({
      QueueName: names.dlqName,
      Attributes: { MessageRetentionPeriod: String(14 * 86_400) },
    }),
  );
  const dlqUrl = dlq.QueueUrl as string;
  const dlqAttributes = await aws.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['QueueArn'] }),
  );
  const queue = await aws.sqs.send(
    new CreateQueueCommand({
      QueueName: names.queueName,
      Attributes: {
        VisibilityTimeout: String(options.visibilityTimeoutSeconds),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: dlqAttributes.Attributes?.QueueArn,
          maxReceiveCount: options.maxReceiveCount,
        }),
      },
    }),
  );
  await createPolicy(aws, names.policyName);
  return {
    tableName: names.tableName,
    queueUrl: queue.QueueUrl as string,
    dlqUrl,
    policyName: names.policyName,
  };
}

async function createTable(aws: AwsClients, tableName: string): Promise<void> {
  try {
    await aws.dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (error: unknown) {
    if (!(error instanceof Error) || error.name !== 'ResourceNotFoundException') throw error;
  }
  await aws.dynamodb.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'gsi1pk', AttributeType: 'S' },
        { AttributeName: 'gsi1sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'gsi1',
          KeySchema: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    }),
  );
}

async function createPolicy(aws: AwsClients, policyName: string): Promise<void> {
  try {
    await aws.iot.send(new GetPolicyCommand({ policyName }));
    return;
  } catch (error: unknown) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
  await aws.iot.send(
    new CreatePolicyCommand({ policyName, policyDocument: JSON.stringify(LOCAL_DEVICE_POLICY) }),
  );
}
