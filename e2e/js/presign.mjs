// Presigns PutObject and GetObject with the AWS SDK for JavaScript v3 and
// fetches them, through the Airlock AWS gateway at $GW with the grant's
// credentials from the environment. Prints one JSON line per step; the Go
// test (internal/awsgw) checks them.
import { S3Client, PutObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const client = new S3Client({
  endpoint: process.env.GW,
  region: process.env.AWS_REGION,
  forcePathStyle: true,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    sessionToken: process.env.AWS_SESSION_TOKEN,
  },
});
const bucket = "logs";
const key = process.env.KEY;
const body = process.env.BODY;

function params(url) {
  return [...new URL(url).searchParams.keys()].sort();
}

async function step(name, url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  console.log(JSON.stringify({ step: name, status: res.status, body: text, params: params(url) }));
}

// PutObject presigned with the checksum of its body: the SDK puts
// X-Amz-Content-Sha256, x-amz-sdk-checksum-algorithm and
// x-amz-checksum-crc32 in the query.
const put = await getSignedUrl(client, new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }), { expiresIn: 300 });
await step("put", put, { method: "PUT", body });
// The same URL with another body of the same length (content-length is
// signed) fails the checksum it carries.
await step("put-other-body", put, { method: "PUT", body: "X" + body.slice(1) });
const get = await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }), { expiresIn: 300 });
await step("get", get, { method: "GET" });
