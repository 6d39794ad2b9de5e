// A real OpenID provider for e2e/console_sso_test.go: the npm
// oidc-provider package on a loopback port, with one confidential client
// (the console, code flow, PKCE required) and two people. Its built-in
// development login page (fields "login" and "password"; any password)
// signs in whoever is named in "login", and findAccount gives them their
// email as a verified claim: alice is mapped to Airlock's human identity
// alice by identities[].email, mallory is no one Airlock knows.
//
// Environment: OP_PORT, REDIRECT_URI (the console's
// …/console/sso/callback), CLIENT_ID, CLIENT_SECRET. Prints
// "READY <issuer>" once it listens.
import Provider from "oidc-provider";
import { randomBytes } from "node:crypto";

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const people = { alice: "alice@example.com", mallory: "mallory@example.com" };

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    response_types: ["code"],
    grant_types: ["authorization_code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  claims: { openid: ["sub"], email: ["email", "email_verified"] },
  // The console reads the person from the ID token, so the scope's claims
  // go there too and not only to userinfo.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  async findAccount(_ctx, id) {
    const email = people[id];
    if (!email) return undefined;
    return { accountId: id, async claims() { return { sub: id, email, email_verified: true }; } };
  },
});

provider.listen(port, "127.0.0.1", () => console.log(`READY ${issuer}`));
process.stdin.on("end", () => process.exit(0)); // the test closing stdin ends the provider
process.stdin.resume();
