// Regenerates legacy_node.json: records sealed the way the original Node service sealed them
// (crypto.createCipheriv('aes-256-gcm', key, iv), no associated data, "v1:<iv>:<tag>:<ct>" in hex).
// Run: node make_legacy_vectors.mjs > legacy_node.json
// The key is a test key made for these vectors; it protects nothing.
import crypto from 'node:crypto';

const key = Buffer.from('6c65676163792d746573742d6b65792d666f722d67656e69652d7661756c7421', 'hex');

function seal(plaintext, ivLength) {
  const iv = crypto.randomBytes(ivLength);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return { enc: `v1:${iv.toString('hex')}:${tag.toString('hex')}:${ct.toString('hex')}` };
}

const plaintexts = [
  JSON.stringify({ email: 'creator@example.com', password: 'hunter2-legacy' }),
  JSON.stringify([{ name: 'sess', value: 'abc123', domain: '.onlyfans.com' }]),
  JSON.stringify({ username: 'zoë', note: 'ünïcödé ✓ 🔐' }),
  JSON.stringify({}),
  JSON.stringify('a bare string secret'),
  '',
];

const vectors = [];
for (const ivLength of [12, 16]) {
  for (const plaintext of plaintexts) {
    vectors.push({ iv_length: ivLength, plaintext, stored: seal(plaintext, ivLength) });
  }
}
console.log(JSON.stringify({
  generator: `node ${process.version} crypto.createCipheriv('aes-256-gcm')`,
  key_b64: key.toString('base64'),
  vectors,
}, null, 2));
