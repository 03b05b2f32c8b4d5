// The open session is gone from the server (expired after idling, or deleted elsewhere): every
// call answers 404 session_not_found. Instead of a stuck viewer, a screen that says so and
// offers what can still be saved: the label map of the masks this tab holds, written here as
// NIfTI (the server has nothing left to export), and the segment list as JSON; or the open
// screen, to upload the image again or open another session.

import { gzip, labelMap, niftiBytes } from '../nifti.js';

export function mountLost(app, el) {
  el.innerHTML = `<div class="card" role="alertdialog" aria-labelledby="lost-title">
      <h1 id="lost-title">This session is gone</h1>
      <p>The server no longer has it: it expired after being left idle, or it was deleted.
        Nothing more can be changed in it.</p>
      <p class="held"></p>
      <p class="archived-note" hidden>The server archived it before it expired.</p>
      <div class="actions">
        <button class="restore primary" hidden>Restore this session</button>
        <button class="save primary">Download the masks held here (NIfTI)</button>
        <button class="segment-list">Segment list (JSON)</button>
        <button class="reopen">Open another image…</button>
      </div></div>`;
  const $ = (s) => el.querySelector(s);
  const { session } = app;

  function held() {
    return session.segments.map((s) => ({ segment: s, mask: session.masks?.get(s.id) }))
      .filter((h) => h.mask);
  }

  function save(name, bytes, type) {
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    Object.assign(document.createElement('a'), { href: url, download: name }).click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  function stem() {
    const { record } = session;
    return (record.name ?? record.id.slice(0, 8)).replace(/[^A-Za-z0-9._-]+/g, '_') + '_labels';
  }

  $('.save').onclick = async () => {
    const { record } = session;
    const layers = held().map(({ segment, mask }) => ({ label: segment.label, data: mask.data }));
    const names = held().map(({ segment }) => `${segment.label}=${segment.name}`).join(' ');
    const raw = niftiBytes(record, labelMap(record.shape, layers), names);
    const { bytes, gzip: zipped } = await gzip(raw);
    save(`${stem()}.nii${zipped ? '.gz' : ''}`, bytes, 'application/octet-stream');
  };
  $('.segment-list').onclick = () => {
    const list = held().map(({ segment: s, mask }) => ({
      label: s.label, name: s.name, color: s.color, revision: mask.revision,
      reviewed: Boolean(s.reviewed), ...session.segmentStats(s.id),
    }));
    save(`${stem()}.json`, JSON.stringify({ session: session.record.id, segments: list }, null, 2),
      'application/json');
  };
  $('.reopen').onclick = () => {
    hide();
    app.emit('open');
  };

  function show() {
    const n = held().length;
    $('.held').textContent = n
      ? `This tab still holds ${n} segment mask${n === 1 ? '' : 's'} (${session.segments.map((s) => s.name).join(', ')}).`
      : 'This tab holds no segment masks.';
    $('.save').disabled = !n;
    $('.segment-list').disabled = !n;
    $('.restore').hidden = true;
    $('.archived-note').hidden = true;
    el.hidden = false;
    offerRestore(session.record?.id);
  }

  /** When the server archived the lost session (issue 16), offer to bring it back. */
  async function offerRestore(id) {
    if (!id) return;
    let archived = [];
    try {
      archived = await app.api.get('/v1/sessions/archived');
    } catch {
      return; // no archive on this server (404): nothing to offer
    }
    const found = archived.some((a) => a.session_id === id);
    $('.restore').hidden = !found;
    $('.archived-note').hidden = !found;
    $('.restore').onclick = async () => {
      $('.restore').disabled = true;
      try {
        await app.api.post('/v1/sessions/restore', { session_id: id });
        await app.openSession(await session.fetch(id));
        hide();
        app.notify('Session restored');
      } catch (err) {
        app.report(err);
      } finally {
        $('.restore').disabled = false;
      }
    };
  }

  function hide() { el.hidden = true; }

  app.addEventListener('lost', show);
  return { show, hide };
}
