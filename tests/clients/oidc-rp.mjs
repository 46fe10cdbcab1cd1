// An OpenID Connect relying party on openid-client, as a web app's server would use it, one step
// per run so that a test can drive the browser's part in between. The one argument is a JSON
// request: {"command": ..., "issuer", "clientId", "clientSecret" (null for a public client),
// ...}; the answer is one JSON
// line on stdout. Every run starts from discovery, so the issuer's metadata is checked each time.
//
//   start   -> {url, verifier, nonce, state}: the authorization URL to open in the browser
//   finish  {callbackUrl, verifier, nonce, state, maxAge?} -> {header, claims, userinfo, tokens}:
//           the code exchanged, the ID token validated (signature through the JWKS, iss, aud,
//           exp, nonce, at_hash, auth_time against maxAge), userinfo fetched for the same sub
//   refresh {refreshToken, expectedSub} -> {header, claims}: the refreshed ID token, validated
//   verify  {idToken} -> {ok, header?, claims?, code?}: an ID token checked against the JWKS the
//           issuer publishes now (jose, openid-client's own JOSE library)
import * as client from 'openid-client';
import * as jose from 'jose';

const request = JSON.parse(process.argv[2]);

async function configuration() {
  return client.discovery(
    new URL(request.issuer),
    request.clientId,
    undefined,
    // A public client (a native app) has no secret: PKCE alone binds its code.
    request.clientSecret ? client.ClientSecretBasic(request.clientSecret) : client.None(),
    { execute: [client.allowInsecureRequests] }, // the test server is plain http on loopback
  );
}

function header(idToken) {
  return jose.decodeProtectedHeader(idToken);
}

async function start() {
  const config = await configuration();
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const parameters = {
    redirect_uri: request.redirectUri,
    scope: request.scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...(request.extra ?? {}),
  };
  const url = client.buildAuthorizationUrl(config, parameters);
  return { url: url.href, verifier, nonce, state };
}

async function finish() {
  const config = await configuration();
  const tokens = await client.authorizationCodeGrant(config, new URL(request.callbackUrl), {
    pkceCodeVerifier: request.verifier,
    expectedNonce: request.nonce,
    expectedState: request.state,
    idTokenExpected: true,
    ...(request.maxAge !== undefined ? { maxAge: request.maxAge } : {}),
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  return {
    header: header(tokens.id_token),
    claims,
    userinfo,
    tokens: {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      id_token: tokens.id_token,
      scope: tokens.scope,
    },
  };
}

async function refresh() {
  const config = await configuration();
  const tokens = await client.refreshTokenGrant(config, request.refreshToken);
  const claims = tokens.claims();
  if (claims.sub !== request.expectedSub) {
    throw new Error(`the refreshed ID token names ${claims.sub}, not ${request.expectedSub}`);
  }
  return { header: header(tokens.id_token), claims, refresh_token: tokens.refresh_token };
}

async function verify() {
  const config = await configuration();
  const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(request.idToken, jwks, {
      issuer: config.serverMetadata().issuer,
      audience: request.clientId,
      algorithms: ['RS256'],
    });
    return { ok: true, header: protectedHeader, claims: payload };
  } catch (error) {
    return { ok: false, code: error.code, message: error.message };
  }
}

const commands = { start, finish, refresh, verify };
try {
  console.log(JSON.stringify(await commands[request.command]()));
} catch (error) {
  console.log(JSON.stringify({ error: { name: error.name, code: error.code, message: error.message } }));
  process.exitCode = 1;
}
