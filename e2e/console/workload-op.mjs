// A real OpenID provider issuing workload tokens for
// e2e/workload_oidc_test.go: the npm oidc-provider package on a loopback
// port, issuing JWT access tokens by the client credentials grant to two
// clients (the agent, triage-agent, and stranger, whom Airlock does not
// bind). The resource indicator picks the token: .../es is signed ES256,
// .../rs RS256, both for the audience "airlock" and good for 10 minutes;
// .../day and .../year are ES256 tokens for "airlock" good for 24 hours
// and for a year; https://other.example/ is for another audience. Keys
// are made at start-up and published in the provider's JWKS, found by
// discovery.
//
// Environment: OP_PORT, CLIENT_SECRET. Prints "READY <issuer>" once it
// listens.
import Provider from "oidc-provider";
import { generateKeyPairSync, randomBytes } from "node:crypto";

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const key = (type, opts, kid, alg) =>
  ({ ...generateKeyPairSync(type, opts).privateKey.export({ format: "jwk" }), kid, alg, use: "sig" });
const client = (id) => ({
  client_id: id,
  client_secret: process.env.CLIENT_SECRET,
  grant_types: ["client_credentials"],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: "client_secret_basic",
});

// Token lifetimes in seconds by the resource's path (default 10 minutes).
const ttl = { "/day": 24 * 3600, "/year": 365 * 24 * 3600 };

const provider = new Provider(issuer, {
  clients: [client("triage-agent"), client("stranger")],
  jwks: { keys: [key("ec", { namedCurve: "P-256" }, "ec-1", "ES256"), key("rsa", { modulusLength: 2048 }, "rsa-1", "RS256")] },
  scopes: ["agent"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "https://airlock.example/es",
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        audience: resource === "https://other.example/" ? "other" : "airlock",
        scope: "agent",
        accessTokenFormat: "jwt",
        accessTokenTTL: ttl[new URL(resource).pathname] ?? 600,
        jwt: { sign: { alg: resource.endsWith("/rs") ? "RS256" : "ES256" } },
      }),
    },
  },
  cookies: { keys: [randomBytes(32).toString("hex")] },
});

provider.listen(port, "127.0.0.1", () => console.log(`READY ${issuer}`));
process.stdin.on("end", () => process.exit(0)); // the test closing stdin ends the provider
process.stdin.resume();
