// A real OpenID Connect provider for iotstore's sign-in tests (panva/oidc-provider).
//
//   node server.mjs [PORT]      PORT 0 or omitted: any free loopback port
//   OIDC_CLIENT_ID (default iotstore), OIDC_CLIENT_SECRET (required),
//   OIDC_REDIRECT_URIS (comma-separated, required), OIDC_AUTH_METHOD (default client_secret_basic)
//
// Prints one JSON line {"issuer": ...} on stdout once it listens. Dev interactions
// accept any login name with any password; "<name>-unverified" gets an unverified email.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const env = (name, fallback) => process.env[name] || fallback || (() => {
  throw new Error(`${name} is required`);
})();
const server = createServer();
server.listen(Number(process.argv[2] || process.env.PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const provider = new Provider(issuer, {
    clients: [{
      client_id: env('OIDC_CLIENT_ID', 'iotstore'),
      client_secret: env('OIDC_CLIENT_SECRET'),
      redirect_uris: env('OIDC_REDIRECT_URIS').split(','),
      token_endpoint_auth_method: env('OIDC_AUTH_METHOD', 'client_secret_basic'),
    }],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' }] },
    async findAccount(_ctx, sub) {
      const name = sub.replace(/-unverified$/, '');
      return {
        accountId: sub,
        async claims() {
          return { sub, email: `${name}@example.test`, email_verified: name === sub, name: `Test ${name}` };
        },
      };
    },
  });
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});
