// Drives one kvconsole vault with the official Azure SDK for JavaScript, as an application
// would, and checks every result it can with Node's own crypto rather than by a round trip
// through the server. tests/keys/test_api_javascript.py runs it against the live test
// deployment; it runs against any deployment given these variables:
//
//   KEY_VAULT_URL         https://{vault}.vault.localhost:{port}
//   AZURE_AUTHORITY_HOST  https://localhost:{port}
//   AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
//   CA_FILE               the PEM file of the CA that issued the server's certificate
//
// It prints one JSON object, {"checks": {name: true or what went wrong}, "keys": {name: latest
// version}}, and exits with 1 when any check failed.

import crypto from "node:crypto";
import dns from "node:dns";
import { readFileSync } from "node:fs";
import https from "node:https";

import { ClientSecretCredential } from "@azure/identity";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";

function setting(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const vaultUrl = setting("KEY_VAULT_URL");
const vaultHost = new URL(vaultUrl).hostname;

// Vault hosts such as myvault.vault.localhost need not resolve on the machine. Resolving them
// here, rather than pointing the SDK at 127.0.0.1, keeps the SDK's check that the challenge's
// resource matches the vault's host name switched on.
function lookupVaultHostOnLoopback(hostname, options, callback) {
  dns.lookup(hostname === vaultHost ? "127.0.0.1" : hostname, options, callback);
}

// The CA given here replaces Node's trust store for these connections, so NODE_EXTRA_CA_CERTS
// plays no part.
const agent = new https.Agent({
  ca: readFileSync(setting("CA_FILE")),
  keepAlive: true,
  lookup: lookupVaultHostOnLoopback,
});
const credential = new ClientSecretCredential(
  setting("AZURE_TENANT_ID"),
  setting("AZURE_CLIENT_ID"),
  setting("AZURE_CLIENT_SECRET"),
  { authorityHost: setting("AZURE_AUTHORITY_HOST"), disableInstanceDiscovery: true, agent },
);
const keys = new KeyClient(vaultUrl, credential, { agent });
const cryptographyClient = (key) => new CryptographyClient(key, credential, { agent });

// --- checks ----------------------------------------------------------------------------------

const checks = {};

class Mismatch extends Error {}

function expect(condition, what) {
  if (!condition) {
    throw new Mismatch(what);
  }
}

function expectEqual(actual, expected, what) {
  const [shownActual, shownExpected] = [actual, expected].map((value) => JSON.stringify(value));
  expect(shownActual === shownExpected, `${what}: expected ${shownExpected}, got ${shownActual}`);
}

async function expectRefusal(promise, status, code) {
  try {
    await promise;
  } catch (error) {
    expectEqual([error.statusCode, error.code], [status, code], "refusal");
    return;
  }
  throw new Mismatch(`expected ${status} ${code}, the call succeeded`);
}

function describeFailure(error) {
  if (error instanceof Mismatch) {
    return error.message;
  }
  const detail = { error: `${error.name}: ${error.message}` };
  if (error.statusCode !== undefined) {
    Object.assign(detail, { status: error.statusCode, code: error.code });
  }
  if (error.request) {
    detail.request = `${error.request.method} ${error.request.url}`;
  }
  return detail;
}

async function check(name, body) {
  try {
    await body();
    checks[name] = true;
  } catch (error) {
    checks[name] = describeFailure(error);
  }
}

// --- Node's own implementations ----------------------------------------------------------------

const base64url = (bytes) => Buffer.from(bytes).toString("base64url");
const same = (left, right) => Buffer.from(left).equals(Buffer.from(right));

// JOSE (RFC 8812) and Node call the curve secp256k1; Key Vault calls it P-256K.
const JWK_CURVES = { "P-256": "P-256", "P-256K": "secp256k1", "P-384": "P-384", "P-521": "P-521" };
const OPENSSL_CURVES = {
  "P-256": "prime256v1",
  "P-256K": "secp256k1",
  "P-384": "secp384r1",
  "P-521": "secp521r1",
};

function nodePublicKey(key) {
  const jwk = key.key;
  const fields =
    jwk.kty === "RSA"
      ? { kty: "RSA", n: base64url(jwk.n), e: base64url(jwk.e) }
      : { kty: "EC", crv: JWK_CURVES[jwk.crv], x: base64url(jwk.x), y: base64url(jwk.y) };
  return crypto.createPublicKey({ key: fields, format: "jwk" });
}

// The SDK's JsonWebKey carries bytes where a JWK carries base64url text.
function sdkJwkOf(jwk) {
  const fields = Object.entries(jwk).map(([field, value]) => [
    field,
    field === "kty" ? value : new Uint8Array(Buffer.from(value, "base64url")),
  ]);
  return Object.fromEntries(fields);
}

const HASHES = { 256: "sha256", 384: "sha384", 512: "sha512" };
const hashOf = (algorithm) => HASHES[algorithm.match(/\d+/)[0]];

const MESSAGE = Buffer.from("signed by kvconsole for the JavaScript SDK");
const digestOf = (algorithm) => crypto.createHash(hashOf(algorithm)).update(MESSAGE).digest();

function nodeVerifies(algorithm, key, signature) {
  const publicKey = nodePublicKey(key);
  const hash = hashOf(algorithm);
  if (algorithm.startsWith("ES")) {
    return crypto.verify(hash, MESSAGE, { key: publicKey, dsaEncoding: "ieee-p1363" }, signature);
  }
  if (algorithm.startsWith("PS")) {
    const saltLength = crypto.createHash(hash).digest().length;
    const pss = { key: publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength };
    return crypto.verify(hash, MESSAGE, pss, signature);
  }
  return crypto.verify(hash, MESSAGE, publicKey, signature);
}

// Keys whose private material this script holds, so that the server's results can be checked
// with the material itself.
const rsaPair = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const octSecret = crypto.randomBytes(32);

// Key Vault's RSA-OAEP is OAEP with SHA-1; RSA-OAEP-256 uses SHA-256 for both hash and MGF1.
const oaep = (algorithm) => ({
  padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
  oaepHash: algorithm === "RSA-OAEP-256" ? "sha256" : "sha1",
});
const rsaEncrypt = (algorithm, plaintext) =>
  crypto.publicEncrypt({ key: rsaPair.publicKey, ...oaep(algorithm) }, plaintext);
const rsaDecrypt = (algorithm, ciphertext) =>
  crypto.privateDecrypt({ key: rsaPair.privateKey, ...oaep(algorithm) }, ciphertext);

// RFC 3394's default initial value.
const KEY_WRAP_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex");

function aesKeyWrap(plain) {
  const cipher = crypto.createCipheriv("id-aes256-wrap", octSecret, KEY_WRAP_IV);
  return Buffer.concat([cipher.update(plain), cipher.final()]);
}

function aesKeyUnwrap(wrapped) {
  const decipher = crypto.createDecipheriv("id-aes256-wrap", octSecret, KEY_WRAP_IV);
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

// --- creating, reading and changing keys ---------------------------------------------------

const created = {};
const EC_KEYS = [
  ["js-ec-p256", "P-256", "ES256", 32],
  ["js-ec-p256k", "P-256K", "ES256K", 32],
  ["js-ec-p384", "P-384", "ES384", 48],
  ["js-ec-p521", "P-521", "ES512", 66],
];
const KEY_NAMES = [
  "js-rsa",
  ...EC_KEYS.map(([name]) => name),
  "js-oct",
  "js-rsa-imported",
  "js-oct-imported",
];
// Before 2038 and in whole seconds: the SDK sends dates as 32-bit seconds.
const expiresOn = new Date(Math.floor(Date.now() / 1000 + 30 * 86400) * 1000);

await check("create RSA 2048 with tags and expiry", async () => {
  const options = { keySize: 2048, expiresOn, tags: { team: "js" } };
  const key = (created.rsa = await keys.createRsaKey("js-rsa", options));
  expectEqual([key.keyType, key.key.n.length, base64url(key.key.e)], ["RSA", 256, "AQAB"], "key");
  expectEqual(nodePublicKey(key).asymmetricKeyDetails.modulusLength, 2048, "modulus length");
  expectEqual(
    key.keyOperations,
    ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    "key operations",
  );
  expectEqual(key.properties.expiresOn?.toISOString(), expiresOn.toISOString(), "expiresOn");
  expectEqual([key.properties.enabled, key.properties.tags], [true, { team: "js" }], "attributes");
});

for (const [name, curve, , length] of EC_KEYS) {
  await check(`create EC ${curve}`, async () => {
    const key = (created[name] = await keys.createEcKey(name, { curve }));
    expectEqual([key.keyType, key.key.crv], ["EC", curve], "key");
    expectEqual([key.key.x.length, key.key.y.length], [length, length], "coordinate lengths");
    expectEqual(key.keyOperations, ["sign", "verify"], "key operations");
    // Node refuses a point that is not on the curve.
    const { namedCurve } = nodePublicKey(key).asymmetricKeyDetails;
    expectEqual(namedCurve, OPENSSL_CURVES[curve], "curve");
    expectEqual(key.properties.enabled, true, "enabled");
  });
}

await check("create oct 256", async () => {
  const key = (created.oct = await keys.createOctKey("js-oct", { keySize: 256 }));
  expectEqual([key.keyType, key.key.k], ["oct", undefined], "key");
});

await check("import RSA", async () => {
  const jwk = rsaPair.privateKey.export({ format: "jwk" });
  const key = (created.importedRsa = await keys.importKey("js-rsa-imported", sdkJwkOf(jwk)));
  expectEqual(base64url(key.key.n), jwk.n, "modulus");
  expectEqual(key.key.d, undefined, "private exponent");
});

await check("import oct", async () => {
  const jwk = { kty: "oct", k: octSecret };
  const key = (created.importedOct = await keys.importKey("js-oct-imported", jwk));
  expectEqual([key.keyType, key.key.k], ["oct", undefined], "key");
});

await check("get latest and by version", async () => {
  const first = created["js-ec-p256"];
  const second = (created.secondEc = await keys.createEcKey("js-ec-p256", { curve: "P-256" }));
  const latest = await keys.getKey("js-ec-p256");
  expectEqual(latest.properties.version, second.properties.version, "latest version");
  expectEqual(base64url(latest.key.x), base64url(second.key.x), "latest x");
  const named = await keys.getKey("js-ec-p256", { version: first.properties.version });
  expectEqual(named.id, first.id, "named version id");
  expectEqual(base64url(named.key.x), base64url(first.key.x), "named version x");
});

await check("update tags only", async () => {
  const tags = { team: "js", stage: "2" };
  const { version } = created.rsa.properties;
  const updated = await keys.updateKeyProperties("js-rsa", version, { tags });
  expectEqual(updated.properties.tags, tags, "tags");
  // The SDK sends "attributes": {} with every update, which must change nothing.
  expectEqual(updated.properties.enabled, true, "enabled");
  expectEqual(updated.properties.expiresOn?.toISOString(), expiresOn.toISOString(), "expiresOn");
});

await check("an expiry after 2038 is refused, not stored as already expired", async () => {
  // The SDK's 32-bit seconds turn 2040 into 1903.
  const after2038 = new Date("2040-01-01T00:00:00Z");
  const creation = keys.createEcKey("js-after-2038", { expiresOn: after2038 });
  await expectRefusal(creation, 400, "BadParameter");
});

await check("rotate", async () => {
  const rotated = (created.rotatedEc = await keys.rotateKey("js-ec-p256"));
  const earlier = [created["js-ec-p256"], created.secondEc].map((key) => key.properties.version);
  expect(!earlier.includes(rotated.properties.version), "the rotation made no new version");
  expectEqual(rotated.key.crv, "P-256", "curve");
  expect(!same(rotated.key.x, created.secondEc.key.x), "the rotation kept the old material");
  const latest = await keys.getKey("js-ec-p256");
  expectEqual(latest.properties.version, rotated.properties.version, "latest after rotation");
});

async function pagesOf(listing, field) {
  const pages = [];
  for await (const page of listing.byPage({ maxPageSize: 2 })) {
    pages.push(page.map((properties) => properties[field]));
  }
  const paged = pages.length > 1 && pages.every((page) => page.length <= 2);
  expect(paged, `not in pages of at most 2: ${JSON.stringify(pages)}`);
  return pages.flat();
}

await check("list versions by page", async () => {
  const versions = await pagesOf(keys.listPropertiesOfKeyVersions("js-ec-p256"), "version");
  const expected = [created["js-ec-p256"], created.secondEc, created.rotatedEc];
  expectEqual(versions.sort(), expected.map((key) => key.properties.version).sort(), "versions");
});

await check("list keys by page", async () => {
  const names = await pagesOf(keys.listPropertiesOfKeys(), "name");
  expectEqual(names.sort(), [...KEY_NAMES].sort(), "names");
});

// --- signatures ------------------------------------------------------------------------------

for (const [name, , algorithm, length] of EC_KEYS) {
  await check(`sign and verify ${algorithm}`, async () => {
    const key = name === "js-ec-p256" ? created.rotatedEc : created[name];
    const client = cryptographyClient(key);
    const digest = digestOf(algorithm);
    const { result: signature } = await client.sign(algorithm, digest);
    expectEqual(signature.length, 2 * length, "signature length");
    expect(nodeVerifies(algorithm, key, signature), "Node rejects the signature");
    const { result: valid } = await client.verify(algorithm, digest, signature);
    expectEqual(valid, true, "remote verify");
    const reversed = Uint8Array.from(signature).reverse();
    const { result: tampered } = await client.verify(algorithm, digest, reversed);
    expectEqual(tampered, false, "remote verify of a tampered signature");
  });
}

for (const algorithm of ["RS256", "PS256", "RS384", "PS512"]) {
  await check(`sign and verify ${algorithm}`, async () => {
    const keyVersion = created.rsa.properties.version;
    const client = keys.getCryptographyClient("js-rsa", { keyVersion });
    const digest = digestOf(algorithm);
    const { result: signature } = await client.sign(algorithm, digest);
    expect(nodeVerifies(algorithm, created.rsa, signature), "Node rejects the signature");
    // verify() sends the digest to the server; verifyData() would check PS* locally with
    // PKCS#1 v1.5 padding (an SDK bug) and say false.
    const { result: valid } = await client.verify(algorithm, digest, signature);
    expectEqual(valid, true, "remote verify");
    const zeros = new Uint8Array(signature.length);
    const { result: tampered } = await client.verify(algorithm, digest, zeros);
    expectEqual(tampered, false, "remote verify of a tampered signature");
  });
}

await check("verify signatures made by Node", async () => {
  const client = cryptographyClient(created.importedRsa);
  const digest = digestOf("PS256");
  const padding = crypto.constants.RSA_PKCS1_PSS_PADDING;
  const pss = crypto.sign("sha256", MESSAGE, { key: rsaPair.privateKey, padding, saltLength: 32 });
  expectEqual((await client.verify("PS256", digest, pss)).result, true, "PS256");
  const pkcs1 = crypto.sign("sha256", MESSAGE, rsaPair.privateKey);
  expectEqual((await client.verify("RS256", digest, pkcs1)).result, true, "RS256");
  expectEqual((await client.verify("PS256", digest, pkcs1)).result, false, "the wrong padding");
});

await check("sign with a versionless key id (POST /keys/{name}//sign)", async () => {
  const client = cryptographyClient(`${vaultUrl}/keys/js-ec-p256`);
  const { result: signature } = await client.sign("ES256", digestOf("ES256"));
  expect(nodeVerifies("ES256", created.rotatedEc, signature), "not signed by the latest version");
});

// --- encryption and key wrapping -------------------------------------------------------------

await check("encrypt and decrypt RSA-OAEP-256", async () => {
  const plaintext = Buffer.from("for the vault's eyes");
  const client = cryptographyClient(created.importedRsa);
  const { result: ciphertext } = await client.encrypt("RSA-OAEP-256", plaintext);
  expect(rsaDecrypt("RSA-OAEP-256", ciphertext).equals(plaintext), "Node cannot decrypt it");
  const theirs = rsaEncrypt("RSA-OAEP-256", plaintext);
  const { result: decrypted } = await client.decrypt("RSA-OAEP-256", theirs);
  expect(same(decrypted, plaintext), "the server cannot decrypt Node's ciphertext");

  const generated = cryptographyClient(created.rsa);
  const { result: sealed } = await generated.encrypt("RSA-OAEP-256", plaintext);
  const { result: roundTrip } = await generated.decrypt("RSA-OAEP-256", sealed);
  expect(same(roundTrip, plaintext), "round trip through the generated key");
});

await check("encrypt and decrypt A256GCM", async () => {
  const plaintext = Buffer.from("gcm text");
  const additionalAuthenticatedData = Buffer.from("context");
  const client = cryptographyClient(created.importedOct);
  const sealed = await client.encrypt({
    algorithm: "A256GCM",
    plaintext,
    additionalAuthenticatedData,
  });
  expectEqual([sealed.iv.length, sealed.authenticationTag.length], [12, 16], "iv and tag");
  const decipher = crypto.createDecipheriv("aes-256-gcm", octSecret, sealed.iv);
  decipher.setAAD(additionalAuthenticatedData);
  decipher.setAuthTag(sealed.authenticationTag);
  const opened = Buffer.concat([decipher.update(sealed.result), decipher.final()]);
  expect(opened.equals(plaintext), "Node decrypts something else");

  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv("aes-256-gcm", octSecret, iv);
  const theirs = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const { result: decrypted } = await client.decrypt({
    algorithm: "A256GCM",
    ciphertext: theirs,
    iv,
    authenticationTag: cipher.getAuthTag(),
  });
  expect(same(decrypted, plaintext), "the server cannot decrypt Node's ciphertext");

  const generated = cryptographyClient(created.oct);
  const roundTrip = await generated.encrypt({
    algorithm: "A256GCM",
    plaintext,
    additionalAuthenticatedData,
  });
  const { result: reopened } = await generated.decrypt({
    algorithm: "A256GCM",
    ciphertext: roundTrip.result,
    iv: roundTrip.iv,
    authenticationTag: roundTrip.authenticationTag,
    additionalAuthenticatedData,
  });
  expect(same(reopened, plaintext), "round trip through the generated key");
});

await check("wrap and unwrap RSA-OAEP", async () => {
  const dataKey = crypto.randomBytes(32);
  const client = cryptographyClient(created.importedRsa);
  // The SDK wraps with RSA-OAEP itself, with the public key it fetched.
  const { result: wrappedBySdk } = await client.wrapKey("RSA-OAEP", dataKey);
  expect(rsaDecrypt("RSA-OAEP", wrappedBySdk).equals(dataKey), "Node cannot unwrap it");
  const { result: unwrapped } = await client.unwrapKey("RSA-OAEP", rsaEncrypt("RSA-OAEP", dataKey));
  expect(same(unwrapped, dataKey), "the server cannot unwrap Node's wrapping");

  // The SDK's own state for a caller that may not read the key: every operation goes to the
  // server, so this is the server's RSA-OAEP wrapping.
  const remoteOnly = cryptographyClient(created.importedRsa.id);
  remoteOnly.key = { kind: "remoteOnlyIdentifier", value: created.importedRsa.id };
  const { result: wrappedByServer } = await remoteOnly.wrapKey("RSA-OAEP", dataKey);
  expect(rsaDecrypt("RSA-OAEP", wrappedByServer).equals(dataKey), "Node cannot unwrap it");
});

await check("wrap and unwrap A256KW", async () => {
  const dataKey = crypto.randomBytes(32);
  const client = cryptographyClient(created.importedOct);
  const { result: wrapped } = await client.wrapKey("A256KW", dataKey);
  expect(aesKeyUnwrap(wrapped).equals(dataKey), "Node cannot unwrap the server's wrapping");
  const { result: unwrapped } = await client.unwrapKey("A256KW", aesKeyWrap(dataKey));
  expect(same(unwrapped, dataKey), "the server cannot unwrap Node's wrapping");

  const generated = cryptographyClient(created.oct);
  const { result: wrappedByGenerated } = await generated.wrapKey("A256KW", dataKey);
  const { result: roundTrip } = await generated.unwrapKey("A256KW", wrappedByGenerated);
  expect(same(roundTrip, dataKey), "round trip through the generated key");
});

// --- deletion and recovery -------------------------------------------------------------------

// The pollers wait 2 s between polls unless told otherwise.
const POLLING = { intervalInMs: 100 };

await check("delete with the poller", async () => {
  const poller = await keys.beginDeleteKey("js-rsa", POLLING);
  const { recoveryId, deletedOn, scheduledPurgeDate } = (await poller.pollUntilDone()).properties;
  expect(recoveryId?.endsWith("/deletedkeys/js-rsa"), `recoveryId ${recoveryId}`);
  expectEqual((scheduledPurgeDate - deletedOn) / 86400000, 90, "days from deletion to purge");
  await expectRefusal(keys.getKey("js-rsa"), 404, "KeyNotFound");
});

await check("recover with the poller", async () => {
  const poller = await keys.beginRecoverDeletedKey("js-rsa", POLLING);
  const recovered = await poller.pollUntilDone();
  expectEqual(recovered.properties.version, created.rsa.properties.version, "recovered version");
  const key = await keys.getKey("js-rsa");
  expectEqual(base64url(key.key.n), base64url(created.rsa.key.n), "recovered material");
});

const latestVersions = {};
await check("latest version of every key", async () => {
  // A listing gives each key's id without its version.
  for await (const properties of keys.listPropertiesOfKeys()) {
    latestVersions[properties.name] = (await keys.getKey(properties.name)).properties.version;
  }
  expectEqual(Object.keys(latestVersions).sort(), [...KEY_NAMES].sort(), "keys");
});

agent.destroy();
process.stdout.write(`${JSON.stringify({ checks, keys: latestVersions }, null, 2)}\n`);
process.exitCode = Object.values(checks).every((outcome) => outcome === true) ? 0 : 1;
