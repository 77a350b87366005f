import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import {
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { motoClients, newUuid, uniqueName } from '../helpers/aws';

describe('AWS SDK clients against moto', () => {
  const aws = motoClients();

  it('puts and gets a DynamoDB item', async () => {
    const TableName = uniqueName('table');
    await aws.dynamodb.send(
      new CreateTableCommand({
        TableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      }),
    );
    await aws.doc.send(new PutCommand({ TableName, Item: { pk: 'a', n: 7 } }));
    const got = await aws.doc.send(new GetCommand({ TableName, Key: { pk: 'a' } }));
    expect(got.Item).toEqual({ pk: 'a', n: 7 });
  });

  it('sends, receives and deletes an SQS message', async () => {
    const { QueueUrl } = await aws.sqs.send(new CreateQueueCommand({ QueueName: uniqueName('q') }));
    await aws.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: '{"jobId":"j1"}' }));
    const received = await aws.sqs.send(
      new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 1 }),
    );
    const message = received.Messages?.[0];
    expect(message?.Body).toBe('{"jobId":"j1"}');
    await aws.sqs.send(
      new DeleteMessageCommand({ QueueUrl, ReceiptHandle: message?.ReceiptHandle }),
    );
    const after = await aws.sqs.send(
      new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 0 }),
    );
    expect(after.Messages ?? []).toHaveLength(0);
  });

  it('creates a thing and a certificate and attaches them', async () => {
    const thingName = newUuid();
    await aws.iot.send(new CreateThingCommand({ thingName }));
    const cert = await aws.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    expect(cert.keyPair?.PrivateKey).toContain('PRIVATE KEY');
    await aws.iot.send(
      new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }),
    );
    const principals = await aws.iot.send(new ListThingPrincipalsCommand({ thingName }));
    expect(principals.principals).toEqual([cert.certificateArn]);
  });
});
