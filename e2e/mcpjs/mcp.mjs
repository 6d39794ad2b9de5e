// An independent MCP client (the official TypeScript SDK) driving Airlock's
// MCP server: `airlock mcp` over stdio and /mcp over streamable HTTP.
// Run by e2e/mcp_test.go, which starts `airlock serve` and answers this
// script's requests on stdin:
//   it prints "ACTIVE <grant>" and waits for a line (the test fetches the
//   grant's credentials meanwhile, to grep every response for the secrets);
//   it prints "PENDING <grant>" and waits with grant_status while the test
//   approves the grant from the CLI.
// Every response is appended to $MCP_RESPONSES (JSON lines).
import { appendFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const bin = env("AIRLOCK_BIN"), addr = env("AIRLOCK_ADDR"), token = env("AIRLOCK_TOKEN");
const awsCLI = env("AWS_CLI"), db = env("PG_DB"), out = env("MCP_RESPONSES");

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function handshake(word, id) {
  console.log(`${word} ${id}`);
  const { done } = await lines.next();
  if (done) throw new Error("the test closed stdin");
}

function keep(what, v) {
  appendFileSync(out, JSON.stringify({ what, v }) + "\n");
  return v;
}

function check(cond, msg, v) {
  if (!cond) throw new Error(`${msg}: ${JSON.stringify(v)}`);
}

async function call(client, name, args) {
  const r = keep(name, await client.callTool({ name, arguments: args }));
  return r;
}

async function ok(client, name, args) {
  const r = await call(client, name, args);
  check(!r.isError, `${name} failed`, r);
  check(r.structuredContent, `${name}: no structured content`, r);
  return r.structuredContent;
}

async function refused(client, name, args, want) {
  const r = await call(client, name, args);
  const text = (r.content || []).map((c) => c.text || "").join("");
  check(r.isError && text.includes(want), `${name} should fail with "${want}"`, r);
  return text;
}

const names = (tools) => tools.tools.map((t) => t.name).sort().join(",");

// stdio: `airlock mcp` with the agent's own token.
const stdio = new Client({ name: "airlock-e2e-stdio", version: "1.0.0" });
const stdioTransport = new StdioClientTransport({
  command: bin, args: ["mcp"], stderr: "inherit",
  env: { ...process.env, AIRLOCK_ADDR: addr, AIRLOCK_TOKEN: token },
});
await stdio.connect(stdioTransport);
// A line that is not JSON (a host's bug, a stray print to the server's
// stdin) is answered with a parse error, which the SDK reports as an error
// response to no request of its own; the session goes on, and every call
// below is made on it. (Before, the server exited at such a line.)
const parseError = new Promise((resolve, reject) => {
  stdio.onerror = (e) => {
    const m = String(e?.message ?? e);
    if (m.includes("-32700")) resolve(keep("parse error", m));
  };
  stdio.onclose = () => reject(new Error("airlock mcp ended the session at a line that is not JSON"));
});
stdioTransport._process.stdin.write("this is not json\n");
await parseError;
stdio.onclose = undefined;
const stdioTools = keep("tools/list stdio", await stdio.listTools());
check(names(stdioTools) === "end_grant,grant_status,list_targets,request_access,run_with_grant,sql_query", "stdio tools", names(stdioTools));
for (const t of stdioTools.tools) {
  check(t.description && t.description.length > 40 && t.inputSchema.type === "object", `tool ${t.name} schema/description`, t);
}

// HTTP: /mcp on the API listener, the same key as a bearer token.
const http = new Client({ name: "airlock-e2e-http", version: "1.0.0" });
await http.connect(new StreamableHTTPClientTransport(new URL(addr + "/mcp"), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
}));
const httpTools = keep("tools/list http", await http.listTools());
check(names(httpTools) === "end_grant,grant_status,list_targets,request_access,sql_query", "HTTP tools", names(httpTools));
// Nothing the HTTP server says may send the agent to a tool it lacks.
check(!http.getInstructions().includes("run_with_grant"), "HTTP instructions name run_with_grant", http.getInstructions());
const httpTargets = await ok(http, "list_targets", {});
check(httpTargets.targets.map((t) => t.name).join(",") === "aws-prod,orders-db", "targets over HTTP", httpTargets);

const targets = await ok(stdio, "list_targets", {});
const aws = targets.targets.find((t) => t.name === "aws-prod");
check(aws && aws.kind === "aws" && aws.permits.some((p) => p.approval === "auto" && p.actions.includes("s3:ListBucket")), "aws-prod permits", targets);

// S3 access that policy approves at once, used through the gateway.
const s3 = await ok(stdio, "request_access", {
  target: "aws-prod", allow: ["s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"], duration: "10m", reason: "triage checkout errors",
});
check(s3.status === "active", "auto-approved request", s3);
await handshake("ACTIVE", s3.grant_id);
const ls = await ok(stdio, "run_with_grant", {
  grant_id: s3.grant_id, argv: ["sh", "-c", '"$0" --endpoint-url "$AWS_ENDPOINT_URL" s3 ls s3://logs/app/', awsCLI],
});
check(ls.exit_code === 0 && ls.stdout.includes("api.log"), "aws s3 ls through the gateway", ls);
const outside = await ok(stdio, "run_with_grant", {
  grant_id: s3.grant_id, argv: ["sh", "-c", '"$0" --endpoint-url "$AWS_ENDPOINT_URL" s3 ls s3://logs/', awsCLI],
});
check(outside.exit_code !== 0, "listing outside the scope", outside);
const envOut = await ok(stdio, "run_with_grant", { grant_id: s3.grant_id, argv: ["env"] });
check(envOut.stdout.includes("AWS_SECRET_ACCESS_KEY=[REDACTED]"), "secrets scrubbed from output", envOut.stdout.length);

// A request that waits for a person, approved from the CLI by the test.
const wide = await ok(stdio, "request_access", {
  target: "aws-prod", allow: ["s3:GetObject arn:aws:s3:::logs/billing/*"], duration: "30m", reason: "billing errors too", wait_seconds: 1,
});
check(wide.status === "pending" && (wide.approvers || []).includes("alice"), "pending request names its approver", wide);
console.log(`PENDING ${wide.grant_id}`);
const approved = await ok(http, "grant_status", { grant_id: wide.grant_id, wait_seconds: 60 });
check(approved.status === "active" && approved.approvals[0].approver === "alice", "grant_status after approval", approved);
await handshake("ACTIVE", wide.grant_id);

// SQL through the PostgreSQL gateway.
const pg = await ok(stdio, "request_access", {
  target: "orders-db", allow: [`pg:select ${db}.public.customers`], duration: "10m", reason: "count customers",
});
check(pg.status === "active", "pg request", pg);
await handshake("ACTIVE", pg.grant_id);
const rows = await ok(stdio, "sql_query", { grant_id: pg.grant_id, statement: "select id, name from customers order by id" });
check(rows.columns.join(",") === "id,name" && rows.row_count === 3 && rows.rows[0][1] === "ada", "sql_query rows", rows);
const httpPG = await ok(http, "grant_status", { grant_id: pg.grant_id });
check(httpPG.note.includes("sql_query") && !httpPG.note.includes("run_with_grant"), "an active grant's note over HTTP", httpPG);
const httpRows = await ok(http, "sql_query", { grant_id: pg.grant_id, statement: "select count(*) as n from customers" });
check(httpRows.rows[0][0] === 3, "sql_query over HTTP", httpRows);
await refused(stdio, "sql_query", { grant_id: pg.grant_id, statement: "select card from payments" }, "permission denied");

// The grant as a resource.
const res = keep("resources/read", await stdio.readResource({ uri: `airlock://grants/${pg.grant_id}` }));
check(JSON.parse(res.contents[0].text).id === pg.grant_id, "grant resource", res);

// Give everything up.
for (const id of [s3.grant_id, wide.grant_id, pg.grant_id]) {
  const ended = await ok(stdio, "end_grant", { grant_id: id, comment: "task done" });
  check(ended.status === "ended", "end_grant", ended);
}
await refused(stdio, "run_with_grant", { grant_id: s3.grant_id, argv: ["true"] }, "ended");
await refused(stdio, "grant_status", { grant_id: "g_doesnotexist" }, "no grant");

await stdio.close();
await http.close();
console.log("DONE");
process.exit(0);
