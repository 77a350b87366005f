import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';

/** IoT policy variable: the name of the thing the connecting certificate is attached to. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT policy variable, kept literally
export const THING_NAME_VARIABLE = '${iot:Connection.Thing.ThingName}';

export interface DeviceIotPolicyProps {
  /**
   * MQTT topic prefixes: a device may publish and receive on `<prefix>/<thing name>/*` and
   * subscribe to `<prefix>/<thing name>/*`. Ignored with `existingPolicyName`.
   */
  readonly topicPrefixes: readonly string[];
  /** Use this existing IoT policy instead of creating one. */
  readonly existingPolicyName?: string;
  /**
   * Keep the created policy when the stack is deleted (certificates still attached to it keep
   * working; CloudFormation cannot delete a policy that is attached).
   * @default true
   */
  readonly retain?: boolean;
}

/**
 * The IoT policy attached to every device certificate. Least privilege: connect only with the
 * client id equal to the thing name of an attached certificate, and only the device's own topics.
 */
export class DeviceIotPolicy extends Construct {
  readonly policyName: string;
  readonly policyArn: string;
  /** The created policy; undefined with `existingPolicyName`. */
  readonly policy?: iot.CfnPolicy;

  constructor(scope: Construct, id: string, props: DeviceIotPolicyProps) {
    super(scope, id);
    const stack = Stack.of(this);
    // formatArn joins plain strings (Fn::Join), so the `${iot:...}` policy variables reach IoT
    // verbatim; Fn::Sub would try to substitute them.
    const iotArn = (resource: string, resourceName: string): string =>
      stack.formatArn({ service: 'iot', resource, resourceName });

    if (props.existingPolicyName !== undefined) {
      this.policyName = props.existingPolicyName;
      this.policyArn = iotArn('policy', props.existingPolicyName);
      return;
    }

    const deviceTopics = (resource: 'topic' | 'topicfilter') =>
      props.topicPrefixes.map((prefix) => iotArn(resource, `${prefix}/${THING_NAME_VARIABLE}/*`));
    this.policy = new iot.CfnPolicy(this, 'Policy', {
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'iot:Connect',
            Resource: iotArn('client', THING_NAME_VARIABLE),
            Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
          },
          {
            Effect: 'Allow',
            Action: ['iot:Publish', 'iot:Receive'],
            Resource: deviceTopics('topic'),
          },
          { Effect: 'Allow', Action: 'iot:Subscribe', Resource: deviceTopics('topicfilter') },
        ],
      },
    });
    this.policy.applyRemovalPolicy(
      props.retain === false ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    );
    this.policyName = this.policy.ref;
    this.policyArn = this.policy.attrArn;
  }
}
