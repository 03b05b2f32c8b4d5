// watchJob against a real local HTTP server speaking the job interface the viewer expects.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import { queueText, readEvents, watchJob } from '../js/progress.js';

let server;
let base;
let polls = 0;

before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/v1/jobs/streamed/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      const states = [['running', 1], ['running', 2], ['succeeded', 3]];
      for (const [state, step] of states) {
        res.write(`event: progress\ndata: ${JSON.stringify({ id: 'streamed', state, progress: { step, total: 3, message: `slice ${step}` } })}\n\n`);
      }
      res.end();
    } else if (req.url === '/v1/jobs/named/events') {
      // the medseg server's event names: state, progress, a kind-specific result, end
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      const send = (event, data) => res.write(`id: 1-0\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      send('state', { state: 'running', progress: { step: 0, total: null, message: '' }, error: null });
      send('slice', { index: 7, done: 1 });
      send('progress', { step: 1, total: 4, message: 'slice 7', loss: null });
      send('end', { id: 'named', state: 'succeeded', progress: { step: 4, total: 4, message: '' }, result_revision: 9 });
      res.end();
    } else if (req.url === '/v1/jobs/polled') {
      polls += 1;
      const state = polls < 3 ? 'running' : 'succeeded';
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ id: 'polled', state, progress: { step: polls, total: 3, message: '' } }));
    } else {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: 'not_found', message: 'no such job' }));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

// the part of the viewer's Api that watchJob uses: fetch that throws {status} on errors
const api = {
  async fetch(method, path, { headers, signal } = {}) {
    const response = await fetch(base + path, { method, headers, signal });
    if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
    return response;
  },
  async get(path, options) { return (await this.fetch('GET', path, options)).json(); },
};

test('follows the event stream to the final state', async () => {
  const seen = [];
  const job = await watchJob(api, 'streamed', (j) => seen.push(`${j.state} ${j.progress.step}/${j.progress.total}`));
  assert.equal(job.state, 'succeeded');
  assert.deepEqual(seen, ['running 1/3', 'running 2/3', 'succeeded 3/3']);
});

test('named server events update the job; other events go to onEvent', async () => {
  const seen = [];
  const events = [];
  const job = await watchJob(api, 'named', (j) => seen.push(`${j.state} ${j.progress.step}/${j.progress.total}`),
    { onEvent: (name, data) => events.push([name, data.index]) });
  assert.equal(job.state, 'succeeded');
  assert.equal(job.result_revision, 9);
  assert.deepEqual(seen, ['running 0/null', 'running 1/4', 'succeeded 4/4']);
  assert.deepEqual(events, [['slice', 7]]);
});

test('falls back to polling when there is no event stream', async () => {
  const seen = [];
  const job = await watchJob(api, 'polled', (j) => seen.push(j.state), { intervalMs: 5 });
  assert.equal(job.state, 'succeeded');
  assert.deepEqual(seen, ['running', 'running', 'succeeded']);
});

test('a missing job rejects with its status', async () => {
  await assert.rejects(watchJob(api, 'missing', () => {}, { intervalMs: 5 }), (err) => err.status === 404);
});

test('readEvents joins multi-line data and ignores comments', async () => {
  const body = ': keep-alive\n\ndata: {"a":\ndata: 1}\n\nevent: x\r\ndata: 2\r\n\r\n';
  const seen = [];
  await readEvents(new Response(body), (v) => seen.push(v));
  assert.deepEqual(seen, [{ a: 1 }, 2]);
});

test('queueText: position, jobs ahead and ETA in words', () => {
  assert.equal(queueText({ queue: null }), '');
  assert.equal(queueText({}), '');
  assert.equal(queueText({ queue: { position: 2, jobs_ahead: 1, workers: 2, eta_s: 14.2 } }),
    'position 2 (1 ahead) · ETA 14 s');
  assert.equal(queueText({ queue: { position: 1, jobs_ahead: 0, workers: 1, eta_s: null } }),
    'position 1 (0 ahead)');
  assert.equal(queueText({ queue: { position: 3, jobs_ahead: 2, workers: 0, eta_s: null } }),
    'position 3 (2 ahead) · no job worker running');
  assert.equal(queueText({ queue: { position: null, jobs_ahead: 0, workers: 1, eta_s: 300 } }),
    'ETA 5 min left');
});
