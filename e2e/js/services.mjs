// Calls every AWS service the gateway maps beyond S3 with the AWS SDK for
// JavaScript v3's own clients, through the Airlock AWS gateway at $GW with
// the grant's credentials from the environment. Prints one JSON line per
// step ({step, ok, code, message, value}); the Go test (internal/awsgw
// TestServiceJSSDK) checks them.
import { CloudWatchLogsClient, FilterLogEventsCommand } from "@aws-sdk/client-cloudwatch-logs";
import { SSMClient, GetParameterCommand, GetParametersCommand } from "@aws-sdk/client-ssm";
import { LambdaClient, InvokeCommand } from "@aws-sdk/client-lambda";
import { EC2Client, DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { STSClient, GetCallerIdentityCommand, AssumeRoleWithWebIdentityCommand } from "@aws-sdk/client-sts";
import { SQSClient, SendMessageCommand } from "@aws-sdk/client-sqs";
import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";

const config = {
  endpoint: process.env.GW,
  region: process.env.AWS_REGION,
  maxAttempts: 1,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    sessionToken: process.env.AWS_SESSION_TOKEN,
  },
};
const account = process.env.ACCOUNT;
const queue = `https://sqs.${process.env.AWS_REGION}.amazonaws.com/${account}/jobs`;

async function step(name, client, command, value) {
  try {
    const out = await client.send(command);
    console.log(JSON.stringify({ step: name, ok: true, value: value(out) }));
  } catch (err) {
    console.log(JSON.stringify({ step: name, ok: false, code: err.name, message: err.message }));
  }
}

const logs = new CloudWatchLogsClient(config);
await step("logs", logs, new FilterLogEventsCommand({ logGroupName: "/app/api", filterPattern: "ERROR" }), (o) => o.events[0].message);
await step("logs-denied", logs, new FilterLogEventsCommand({ logGroupName: "/app/payments" }), () => "");
const ssm = new SSMClient(config);
await step("ssm", ssm, new GetParameterCommand({ Name: "/app/db/url" }), (o) => o.Parameter.Value);
await step("ssm-denied", ssm, new GetParametersCommand({ Names: ["/app/db/url", "/app/payments/key"] }), () => "");
const lambda = new LambdaClient(config);
await step("lambda", lambda, new InvokeCommand({ FunctionName: "triage-helper", Payload: new TextEncoder().encode('{"order":42}') }), (o) => new TextDecoder().decode(o.Payload));
await step("ec2", new EC2Client(config), new DescribeInstancesCommand({}), (o) => o.Reservations[0].Instances[0].InstanceId);
// Unsigned (anonymous credentials): refused in EC2's shape.
await step("ec2-unsigned", new EC2Client({ ...config, credentials: undefined, signer: { sign: async (r) => r } }), new DescribeInstancesCommand({}), () => "");
await step("sts", new STSClient(config), new GetCallerIdentityCommand({}), (o) => `${o.Account} ${o.UserId} ${o.Arn}`);
// The SDK sends this one unsigned: refused in STS's shape.
await step("sts-unsigned", new STSClient(config), new AssumeRoleWithWebIdentityCommand({ RoleArn: `arn:aws:iam::${account}:role/agent`, RoleSessionName: "agent", WebIdentityToken: "a-token" }), () => "");
await step("sqs", new SQSClient(config), new SendMessageCommand({ QueueUrl: queue, MessageBody: "reindex" }), (o) => o.MessageId);
const ddb = new DynamoDBClient(config);
await step("dynamodb", ddb, new GetItemCommand({ TableName: "orders", Key: { id: { S: "42" } } }), (o) => o.Item.status.S);
await step("dynamodb-denied", ddb, new GetItemCommand({ TableName: "customers", Key: { id: { S: "42" } } }), () => "");
// Unsigned: refused with DynamoDB's code for a call with no credentials.
await step("dynamodb-unsigned", new DynamoDBClient({ ...config, credentials: undefined, signer: { sign: async (r) => r } }), new GetItemCommand({ TableName: "orders", Key: { id: { S: "42" } } }), () => "");
