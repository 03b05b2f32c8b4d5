// The session state under Node: no DOM, so it runs here with a fake API. The mask codec is
// stubbed (the viewer imports it from where the server serves it, not from this tree; its own
// tests live with it): these tests are about the bookkeeping, not the decoding.
import assert from 'node:assert/strict';
import { register } from 'node:module';
import { test } from 'node:test';

const CODEC = `export const decodeMask = (body) => ({ data: Uint8Array.from(body.voxels) });
export const applyDelta = () => {};`;
const HOOKS = `export async function resolve(specifier, context, next) {
  if (specifier.endsWith('/lib/maskcodec.js')) {
    return { url: ${JSON.stringify(`data:text/javascript,${encodeURIComponent(CODEC)}`)}, shortCircuit: true };
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);
const { Session } = await import('../js/session.js');

const RECORD = { id: 'abc', shape: [1, 1, 2], segments: [] };

/** An API that answers from `routes` {'METHOD path': body | (json) => body} and logs the calls. */
function fakeApp(routes) {
  const calls = [];
  const events = [];
  const answer = async (method, path, json) => {
    calls.push(`${method} ${path}`);
    const route = routes[`${method} ${path}`];
    if (route === undefined) throw Object.assign(new Error(`no route ${method} ${path}`), { status: 404 });
    return typeof route === 'function' ? route(json) : structuredClone(route);
  };
  const api = {
    get: (path) => answer('GET', path),
    post: (path, json) => answer('POST', path, json),
    patch: (path, json) => answer('PATCH', path, json),
    delete: (path) => answer('DELETE', path),
  };
  return { api, calls, events, emit: (type) => events.push(type) };
}

const segment = (id, revision = 1) => ({ id, name: `s${id}`, color: '#ff8000', revision });
const mask = (revision, voxels = [0, 1]) => ({ revision, voxels });

test('session.js and what it imports need no DOM', () => {
  assert.equal(typeof document, 'undefined');
  assert.equal(typeof window, 'undefined');
});

test('edits that arrive together before any segment exists create exactly one', async () => {
  let created = 0;
  const bodies = [];
  const app = fakeApp({
    // the server's default colour when the body has none, as medseg.store.colors gives it
    'POST /v1/sessions/abc/segments': (body) => {
      bodies.push(body);
      return { ...segment(++created), color: body.color ?? '#e6194b' };
    },
    'GET /v1/sessions/abc/segments/1/mask': mask(1),
  });
  const session = new Session(app);
  session.open(RECORD);
  const ids = await Promise.all([session.ensureSegment(), session.ensureSegment()]);
  assert.deepEqual(ids, [1, 1]);
  assert.equal(created, 1);
  // no preset name: the viewer leaves the colour to the server (whose colours never repeat)
  assert.deepEqual(bodies, [{}]);
  assert.equal(session.activeSegment.color, '#e6194b');
  assert.deepEqual({ ...session.activeSegment, color: undefined },
    { ...segment(1), color: undefined, opacity: 0.5, visible: true });
  assert.equal(session.masks.revision(1), 1);
});

test('deleting the active segment makes the next one active and forgets its mask', async () => {
  const app = fakeApp({
    'GET /v1/sessions/abc/segments/1/mask': mask(1),
    'GET /v1/sessions/abc/segments/2/mask': mask(1),
    'DELETE /v1/sessions/abc/segments/1': null,
  });
  const session = new Session(app);
  session.open(RECORD);
  await Promise.all([session.addSegment(segment(2)), session.addSegment(segment(1))]);
  assert.deepEqual(session.segments.map((s) => s.id), [1, 2]); // kept in id order
  session.setActiveSegment(1);
  await session.deleteSegment(1);
  assert.equal(session.activeSegmentId, 2);
  assert.equal(session.masks.get(1), undefined);
});

test('refreshAll drops segments deleted elsewhere, adds new ones and brings masks to the head', async () => {
  const app = fakeApp({
    'GET /v1/sessions/abc/segments/1/mask': mask(1),
    'GET /v1/sessions/abc/segments/2/mask': mask(1),
    'GET /v1/sessions/abc/segments/3/mask': mask(1),
    'GET /v1/sessions/abc/segments': [segment(2, 4), segment(3)],
    'GET /v1/sessions/abc/segments/2/delta?from=1': { from_revision: 1, to_revision: 4, bbox: null },
  });
  const session = new Session(app);
  session.open(RECORD);
  await session.addSegment(segment(1));
  await session.addSegment(segment(2));
  session.setActiveSegment(1);
  await session.refreshAll();
  assert.deepEqual(session.segments.map((s) => [s.id, s.revision]), [[2, 4], [3, 1]]);
  assert.equal(session.masks.revision(2), 4);
  assert.equal(session.masks.get(1), undefined);
  assert.equal(session.activeSegmentId, 2);
});

test('overlay layers: visible segments in id order, colour and opacity packed as RGBA', async () => {
  const app = fakeApp({
    'GET /v1/sessions/abc/segments/1/mask': mask(1),
    'GET /v1/sessions/abc/segments/2/mask': mask(1),
  });
  const session = new Session(app);
  session.open(RECORD);
  await session.addSegment(segment(1));
  await session.addSegment({ ...segment(2), color: '#102030' });
  app.events.length = 0;
  session.styleSegment(1, { visible: false });
  assert.deepEqual(app.events, ['segments', 'overlay']);
  session.styleSegment(2, { opacity: 1 });
  const layers = session.overlayLayers();
  assert.equal(layers.length, 1);
  assert.equal(layers[0].rgba, 0xff302010);
  assert.deepEqual([...layers[0].data], [0, 1]);
});

test('a new segment sends a colour only for an organ preset', async () => {
  const bodies = [];
  const app = fakeApp({
    'POST /v1/sessions/abc/segments': (body) => {
      bodies.push(body);
      return { ...segment(bodies.length), color: body.color ?? '#3cb44b' };
    },
    'GET /v1/sessions/abc/segments/1/mask': mask(1),
    'GET /v1/sessions/abc/segments/2/mask': mask(1),
  });
  const session = new Session(app);
  session.open(RECORD);
  await session.createSegment('Liver');
  await session.createSegment('tumour bed');
  assert.deepEqual(bodies, [{ color: '#dd8265', name: 'Liver' }, { name: 'tumour bed' }]);
});
