import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface ProvisionerAlarmsProps {
  readonly queue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
  readonly worker: lambda.IFunction;
  /** Alarm when the oldest message in the work queue is older than this. */
  readonly queueAgeThreshold: Duration;
  /** Email address subscribed to the alarm topic; unset: alarms only show in CloudWatch. */
  readonly alarmEmail?: string;
}

/**
 * The three alarms that say the pipeline needs an operator: a job gave up (DLQ not empty), the
 * queue is not draining (oldest message too old), the worker crashes or times out.
 */
export class ProvisionerAlarms extends Construct {
  readonly dlqNotEmpty: cloudwatch.Alarm;
  readonly queueBacklog: cloudwatch.Alarm;
  readonly workerErrors: cloudwatch.Alarm;
  /** Set when `alarmEmail` is. */
  readonly topic?: sns.Topic;

  constructor(scope: Construct, id: string, props: ProvisionerAlarmsProps) {
    super(scope, id);
    const minute = Duration.minutes(1);
    this.dlqNotEmpty = new cloudwatch.Alarm(this, 'DlqNotEmpty', {
      alarmDescription:
        'A provisioning job exhausted its retries and is in the dead-letter queue. Inspect it and replay it with the ops CLI.',
      metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: minute,
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.queueBacklog = new cloudwatch.Alarm(this, 'OldestMessageAge', {
      alarmDescription: `The oldest provisioning message has waited more than ${props.queueAgeThreshold.toHumanString()}: the worker is failing, throttled or too slow for the load.`,
      metric: props.queue.metricApproximateAgeOfOldestMessage({
        period: minute,
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: props.queueAgeThreshold.toSeconds(),
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // Per-record failures are reported as batch item failures and do not count here: this
    // catches crashes, timeouts and out-of-memory of whole invocations.
    this.workerErrors = new cloudwatch.Alarm(this, 'WorkerErrors', {
      alarmDescription:
        'The worker Lambda failed whole invocations (crash, timeout or out of memory).',
      metric: props.worker.metricErrors({
        period: Duration.minutes(5),
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    if (props.alarmEmail === undefined) return;
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'balena IoT provisioner alarms',
      enforceSSL: true,
    });
    Validations.of(this.topic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'Alarm notifications carry no secrets. CloudWatch cannot publish to a topic encrypted with the AWS managed aws/sns key, and a customer managed key would cost more than the rest of an idle deployment.',
    });
    this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const action = new cloudwatchActions.SnsAction(this.topic);
    for (const alarm of [this.dlqNotEmpty, this.queueBacklog, this.workerErrors]) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
  }
}
