// Real ZeroMQ sockets on loopback: CURVE with the job's keys, ZAP refusal of outsiders,
// hostile frames dropped without harm.
import t from 'tap';
import { Dealer } from 'zeromq';
import { createJobKeys, readJobKeys, writeJobKeys, z85Encode } from '../../src/transport/keys.js';
import { DealerEndpoint, RouterEndpoint } from '../../src/transport/ZmqEndpoints.js';
import { createLogger, type LogRecord } from '../../src/util/Logger.js';
import type { Frame } from '../../src/transport/FrameCodec.js';
import { curveKeyPair } from 'zeromq';

const waitFor = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
};

t.test('router and dealer exchange frames over CURVE; outsiders are refused', async (t) => {
  const keys = createJobKeys('job-test');
  const logs: LogRecord[] = [];
  const logger = createLogger('debug', (r) => logs.push(r));
  const router = new RouterEndpoint({ keys, logger });
  t.teardown(() => router.close());
  const url = await router.bind('127.0.0.1', 0);
  t.match(url, /^tcp:\/\/127\.0\.0\.1:\d+$/, `bound ${url}`);

  const got: [Frame, string][] = [];
  router.onFrame((f, from) => {
    got.push([f, from]);
    if (f.type === 'peer.hello') router.send(from, 'peer.welcome', { jobId: keys.jobId, world: 2 });
  });

  const rank = new DealerEndpoint({ keys, logger, role: 'rank', index: 1, incarnation: 0 });
  t.teardown(() => rank.close());
  const replies: Frame[] = [];
  rank.onFrame((f) => replies.push(f));
  rank.connect(url);
  rank.send('coord', 'peer.hello', { role: 'rank', host: 'localhost', pid: process.pid, rank: 1 });
  t.ok(await waitFor(() => replies.length === 1), 'welcome received');
  t.equal(got[0]![1], 'rank:1', 'router sees the routing id');
  t.equal(replies[0]!.type, 'peer.welcome');

  // A peer that knows the server's public key but not the job's client key.
  const outsiderKeys = { ...keys, client: curveKeyPair() };
  const outsider = new DealerEndpoint({ keys: outsiderKeys, logger, role: 'rank', index: 9, incarnation: 0 });
  t.teardown(() => outsider.close());
  outsider.connect(url);
  outsider.send('coord', 'peer.hello', { role: 'rank', host: 'evil', pid: 1, rank: 9 });
  await new Promise((r) => setTimeout(r, 500));
  t.notOk(got.some(([, from]) => from === 'rank:9'), 'no frame from the outsider reached the coordinator');
  t.ok(logs.some((l) => l.msg === 'refused a peer without the job key'), 'the refusal is logged');

  // Hostile frames from a member: garbage, a truncated frame, one over the size limit (ZeroMQ drops
  // the connection, which reconnects). All dropped; the endpoint keeps working.
  rank.sendRaw([Buffer.from('definitely not msgpack')]);
  rank.sendRaw([Buffer.from([0x97, 0x01, 0xa4, 0x6e, 0x6f, 0x70, 0x65])]);
  const before = router.stats.dropped;
  rank.sendRaw([Buffer.alloc(5 * 1024 * 1024, 1)]); // larger than the frame limit
  rank.send('coord', 'peer.heartbeat', { step: 5, phase: 'normal' });
  t.ok(await waitFor(() => got.some(([f]) => f.type === 'peer.heartbeat')), 'a good frame still arrives after bad ones');
  t.ok(router.stats.dropped >= before + 2, `bad frames dropped (${router.stats.dropped})`);
});

t.test('a frame claiming another sender is dropped', async (t) => {
  const keys = createJobKeys();
  const logger = createLogger('silent');
  const router = new RouterEndpoint({ keys, logger });
  t.teardown(() => router.close());
  const url = await router.bind();
  const got: string[] = [];
  router.onFrame((f, from) => got.push(`${f.role}:${f.sender}@${from}`));
  // a raw dealer with the job key but routing id rank:0 sending frames that claim rank:5
  const d = new Dealer({ linger: 0, routingId: 'rank:0', curveServerKey: keys.server.publicKey, curvePublicKey: keys.client.publicKey, curveSecretKey: keys.client.secretKey });
  t.teardown(() => d.close());
  d.connect(url);
  const { encodeFrame } = await import('../../src/transport/FrameCodec.js');
  await d.send(encodeFrame({ type: 'peer.heartbeat', role: 'rank', sender: 5, incarnation: 0, seq: 0, body: { step: 1, phase: 'x' } }));
  await d.send(encodeFrame({ type: 'peer.heartbeat', role: 'rank', sender: 0, incarnation: 0, seq: 1, body: { step: 1, phase: 'x' } }));
  t.ok(await waitFor(() => got.length >= 1));
  await new Promise((r) => setTimeout(r, 100));
  t.same(got, ['rank:0@rank:0'], 'only the honest frame arrived');
  t.equal(router.stats.dropped, 1);
});

t.test('job key files: written 0600, read back, malformed ones refused with a coded error', async (t) => {
  const dir = t.testdir({ 'bad.json': '{"version":1}', 'text.txt': 'hello' });
  const keys = createJobKeys();
  const { statSync } = await import('node:fs');
  await writeJobKeys(`${dir}/job.key`, keys);
  t.equal(statSync(`${dir}/job.key`).mode & 0o777, 0o600);
  t.same(await readJobKeys(`${dir}/job.key`), keys);
  await t.rejects(readJobKeys(`${dir}/bad.json`), { code: 'ERR_JOB_KEY', message: /malformed/ });
  await t.rejects(readJobKeys(`${dir}/text.txt`), { code: 'ERR_JOB_KEY', message: /not JSON/ });
  await t.rejects(readJobKeys(`${dir}/missing`), { code: 'ERR_JOB_KEY', message: /cannot read/ });
  t.equal(z85Encode(Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b])), 'HelloWorld', 'z85 reference vector');
});
