// A relying party and resource server built on panva's openid-client (v6,
// on oauth4webapi): neither Latchkey's code nor Authlib. It is given one
// thing, the issuer URL (argv[2]); every endpoint it calls comes from the
// discovery document (OIDC Discovery 1.0 §4, RFC 8414 §3).
//
// It listens on 127.0.0.1 (port chosen by the OS, printed as the first line
// of stdout as {"port": N}) and exposes each library call as a POST route
// named after it (JSON in, JSON out), so tests/conformance (pytest +
// Chromium) can drive it as a person and an operator would. Clients are
// registered with Latchkey by the tests and handed over with POST
// /discovery. Its own pages: /callback (the redirect URI), /signed-out (the
// post-logout redirect URI), /result and /log (what it saw).
//
// Errors come back as HTTP 400 with {"error": {...}}: the OAuth error code
// the server sent (RFC 6749 §5.2), or the library's own check that failed.

import http from 'node:http';
import https from 'node:https';
import * as oidc from 'openid-client';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const issuer = new URL(process.argv[2]);

const configs = new Map(); // client_id -> openid-client Configuration
const transactions = new Map(); // state -> one authorization request
const deviceAuthorizations = new Map(); // device_code -> RFC 8628 §3.2 answer
const fetched = []; // every request the library made: {method, url}
const built = []; // URLs built for the browser to open: {endpoint, url}
const signedOut = []; // queries that reached the post-logout redirect URI

// One request on a connection of its own. Node's fetch keeps idle
// connections for 4 s and gunicorn closes them after 2 s, so a reused one
// can be closed under a request ("other side closed"); retrying is unsafe
// for a code exchange, and a fresh connection cannot race.
function freshConnectionFetch(url, options = {}) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = (target.protocol === 'https:' ? https : http).request(
      target,
      {
        method: options.method ?? 'GET',
        headers: Object.fromEntries(new Headers(options.headers).entries()),
        agent: false,
        signal: options.signal,
      },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const empty = [204, 205, 304].includes(response.statusCode);
          resolve(new Response(empty ? null : Buffer.concat(chunks), {
            status: response.statusCode,
            headers: response.headers,
          }));
        });
      },
    );
    request.on('error', reject);
    if (options.body !== undefined && options.body !== null) {
      request.write(options.body.toString());
    }
    request.end();
  });
}

// Records each request openid-client makes, so the suite can show that
// every endpoint discovery advertises was really used.
async function recordingFetch(url, options) {
  fetched.push({ method: options?.method ?? 'GET', url: String(url) });
  return freshConnectionFetch(url, options);
}

function clientAuthentication(method, secret) {
  // RFC 6749 §2.3.1 (basic, post); OIDC Core §9 "none" for public clients.
  switch (method) {
    case 'client_secret_basic':
      return oidc.ClientSecretBasic(secret);
    case 'client_secret_post':
      return oidc.ClientSecretPost(secret);
    case 'none':
      return oidc.None();
    default:
      throw new TypeError(`unknown client authentication method ${method}`);
  }
}

// POST /discovery {client_id, client_secret?, auth_method, metadata?}:
// discovery for this client; answers the metadata the library discovered.
// `metadata` is client metadata the library holds the server to, e.g.
// id_token_signed_response_alg (OIDC Registration §2).
async function registerClient(body) {
  const config = await oidc.discovery(
    issuer,
    body.client_id,
    body.metadata ?? {},
    clientAuthentication(body.auth_method, body.client_secret),
    {
      // The test issuer is http://127.0.0.1; everything else stays strict.
      execute: [oidc.allowInsecureRequests],
      [oidc.customFetch]: recordingFetch,
    },
  );
  // Check ID token signatures against jwks_uri (OIDC Core §3.1.3.7 step 6)
  // even though they arrive straight from the token endpoint.
  oidc.enableNonRepudiationChecks(config);
  configs.set(body.client_id, config);
  return { server_metadata: config.serverMetadata() };
}

function configFor(clientId) {
  const config = configs.get(clientId);
  if (!config) throw new TypeError(`client ${clientId} was not registered with the RP`);
  return config;
}

function joseHeader(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString());
}

// A token endpoint answer as JSON: the tokens, the ID token claims the
// library validated, the ID token's JOSE header, and the kids of the JWKS
// the library fetched from jwks_uri to check its signature.
function tokenResult(config, tokens) {
  const result = { tokens: { ...tokens } };
  const claims = tokens.claims();
  if (claims) {
    result.id_token_claims = claims;
    result.id_token_header = joseHeader(tokens.id_token);
  }
  const jwks = oidc.getJwksCache(config);
  result.jwks_kids = jwks ? jwks.jwks.keys.map((key) => key.kid) : [];
  return result;
}

// POST /buildAuthorizationUrl {client_id, redirect_uri, scope, ...extra}: a
// fresh PKCE verifier (RFC 7636 §4.1), state and nonce; answers the URL to
// open.
async function startAuthorization(body) {
  const config = configFor(body.client_id);
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const { client_id: _, redirect_uri, scope, exchange_verifier, ...extra } = body;
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri,
    scope,
    state,
    nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    ...extra,
  });
  built.push({ endpoint: 'authorization_endpoint', url: url.href });
  transactions.set(state, {
    clientId: body.client_id,
    // exchange_verifier: send this verifier at the token endpoint instead of
    // the one the challenge was made from (to see RFC 7636 §4.6 enforced).
    codeVerifier: exchange_verifier ?? codeVerifier,
    nonce,
    openid: scope.split(' ').includes('openid'),
    result: null,
  });
  return { url: url.href, state, nonce };
}

// GET /callback: the redirect URI. The library checks iss (RFC 9207),
// state, the code exchange with the PKCE verifier, and the ID token
// (signature against jwks_uri, iss, aud, exp, iat, nonce).
async function callback(url) {
  const state = url.searchParams.get('state');
  const transaction = transactions.get(state);
  if (!transaction) return { error: { message: 'unknown state' } };
  const config = configFor(transaction.clientId);
  try {
    const tokens = await oidc.authorizationCodeGrant(config, url, {
      pkceCodeVerifier: transaction.codeVerifier,
      expectedState: state,
      expectedNonce: transaction.nonce,
      idTokenExpected: transaction.openid,
    });
    transaction.result = tokenResult(config, tokens);
  } catch (error) {
    transaction.result = { error: describe(error) };
  }
  return transaction.result;
}

async function refresh(body) {
  const config = configFor(body.client_id);
  return tokenResult(config, await oidc.refreshTokenGrant(config, body.refresh_token));
}

async function revoke(body) {
  const params = body.token_type_hint ? { token_type_hint: body.token_type_hint } : {};
  await oidc.tokenRevocation(configFor(body.client_id), body.token, params);
  return { revoked: true };
}

async function introspect(body) {
  const params = body.token_type_hint ? { token_type_hint: body.token_type_hint } : {};
  return oidc.tokenIntrospection(configFor(body.client_id), body.token, params);
}

async function clientCredentials(body) {
  const config = configFor(body.client_id);
  const params = body.scope ? { scope: body.scope } : {};
  return tokenResult(config, await oidc.clientCredentialsGrant(config, params));
}

async function startDevice(body) {
  const answer = await oidc.initiateDeviceAuthorization(configFor(body.client_id), {
    scope: body.scope,
  });
  deviceAuthorizations.set(answer.device_code, answer);
  return answer;
}

// RFC 8628 §3.4-3.5 as the library does it: wait `interval`, poll, repeat
// while authorization_pending, add 5 s on slow_down.
async function pollDevice(body) {
  const config = configFor(body.client_id);
  const answer = deviceAuthorizations.get(body.device_code);
  return tokenResult(config, await oidc.pollDeviceAuthorizationGrant(config, answer));
}

// One device access token request (RFC 8628 §3.4), no waiting: to see the
// answers the library's polling loop hides.
async function deviceTokenRequestOnce(body) {
  const config = configFor(body.client_id);
  const tokens = await oidc.genericGrantRequest(config, DEVICE_GRANT, {
    device_code: body.device_code,
  });
  return tokenResult(config, tokens);
}

async function userinfo(body) {
  return oidc.fetchUserInfo(configFor(body.client_id), body.access_token, body.sub);
}

async function endSession(body) {
  const { client_id, ...params } = body;
  const url = oidc.buildEndSessionUrl(configFor(client_id), params);
  built.push({ endpoint: 'end_session_endpoint', url: url.href });
  return { url: url.href };
}

function describe(error) {
  const out = { name: error.name, message: error.message, code: error.code };
  // ResponseBodyError: the server's own OAuth error (RFC 6749 §5.2).
  if (error.error !== undefined) out.error = error.error;
  if (error.error_description !== undefined) out.error_description = error.error_description;
  if (error.status !== undefined) out.status = error.status;
  // WWWAuthenticateChallengeError: RFC 6750 §3 error in the challenge.
  if (Array.isArray(error.cause)) {
    out.challenge_error = error.cause[0]?.parameters?.error;
  } else if (error.cause?.code || error.cause?.message) {
    out.cause_code = error.cause.code;
    out.cause_message = error.cause.message;
  }
  return out;
}

const routes = {
  '/discovery': registerClient,
  '/buildAuthorizationUrl': startAuthorization,
  '/refreshTokenGrant': refresh,
  '/tokenRevocation': revoke,
  '/tokenIntrospection': introspect,
  '/clientCredentialsGrant': clientCredentials,
  '/initiateDeviceAuthorization': startDevice,
  '/pollDeviceAuthorizationGrant': pollDevice,
  '/deviceCodeGrantOnce': deviceTokenRequestOnce,
  '/fetchUserInfo': userinfo,
  '/buildEndSessionUrl': endSession,
};

function send(response, status, body, type = 'application/json') {
  const text = type === 'application/json' ? JSON.stringify(body) : body;
  response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  response.end(text);
}

function page(title) {
  return `<!doctype html><title>${title}</title><h1 id="rp">${title}</h1>`;
}

async function readJson(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
}

const server = http.createServer(async (request, response) => {
  const url = new URL(request.url, `http://${request.headers.host}`);
  try {
    if (request.method === 'GET' && url.pathname === '/callback') {
      const result = await callback(url);
      return send(response, 200, page(result.error ? 'Sign-in failed' : 'Signed in'), 'text/html');
    }
    if (request.method === 'GET' && url.pathname === '/signed-out') {
      signedOut.push(Object.fromEntries(url.searchParams));
      return send(response, 200, page('Signed out'), 'text/html');
    }
    if (request.method === 'GET' && url.pathname === '/result') {
      const transaction = transactions.get(url.searchParams.get('state'));
      return send(response, transaction?.result ? 200 : 404, transaction?.result ?? {});
    }
    if (request.method === 'GET' && url.pathname === '/log') {
      return send(response, 200, { fetched, built, signed_out: signedOut });
    }
    const handler = request.method === 'POST' && routes[url.pathname];
    if (!handler) return send(response, 404, { error: { message: 'no such route' } });
    return send(response, 200, await handler(await readJson(request)));
  } catch (error) {
    return send(response, 400, { error: describe(error) });
  }
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
