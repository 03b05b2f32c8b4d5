// Segment jobs (propagation, fine-tuning) and locked slices. `propagate` posts the active
// segment's propagation along a view's axis from its slice, follows the job with watchJob
// (progress bar with cancel), shows each finished slice as it arrives (a preview in the mask
// store) and, when the job has committed, brings the mask to the job's revision through the
// usual resync path. One job at a time per segment: the session keeps the running ones.
// Locks are segment state (`locked_slices` {axis: [index]}): `toggleLock` sets or clears one.

import { ApiError } from './api.js';
import { ProgressBar, queueText, watchJob } from './progress.js';

const FINAL_STATES = new Set(['succeeded', 'failed', 'cancelled']);
const QUEUE_REFRESH_MS = 2000; // how often a followed job's queue position and ETA are refreshed

/** Follow one job of a segment to its end; the ProgressBar goes into `container`. */
export async function followJob(app, job, label, container, { onEvent } = {}) {
  const bar = new ProgressBar(container, label, {
    onCancel: () => app.api.post(`/v1/jobs/${job.id}/cancel`).catch((err) => app.report(err)),
  });
  bar.el.dataset.job = job.id;
  // the queue position and ETA come with GET /v1/jobs/{id} (not the event stream): refreshed
  // every few seconds while the job waits or runs
  let queue = queueText(job);
  let seen = job;
  const show = (j) => {
    seen = j;
    const p = j.progress ?? {};
    bar.el.dataset.queue = queue;
    if (j.state === 'queued') bar.set(0, null, `waiting for a worker${queue ? `: ${queue}` : ''}`);
    else {
      const loss = typeof p.loss === 'number' ? ` · loss ${p.loss.toFixed(3)}` : '';
      const eta = queue ? ` · ${queue}` : '';
      bar.set(p.step ?? 0, p.total ?? null, (p.total ? `${p.step} of ${p.total}` : p.message) + loss + eta);
    }
  };
  show(job);
  const refresh = setInterval(() => {
    app.api.get(`/v1/jobs/${job.id}`).then((current) => {
      queue = queueText(current);
      if (!FINAL_STATES.has(seen.state)) show({ ...seen, queue: current.queue });
    }).catch(() => {}); // the event stream reports what matters; this is a hint
  }, QUEUE_REFRESH_MS);
  let final;
  try {
    final = await watchJob(app.api, job.id, show, { onEvent, job });
  } catch (err) {
    bar.finish('lost track of the job', true);
    throw err;
  } finally {
    clearInterval(refresh);
  }
  if (final.state === 'succeeded') bar.finish('done');
  else if (final.state === 'cancelled') bar.finish('cancelled: nothing applied', true);
  else bar.finish(final.error?.message ?? 'failed', true);
  return final;
}

/** The error a failed job is reported as (409 when the segment moved on while it ran). */
export function jobError(job, what) {
  const code = job.error?.code ?? 'internal_error';
  const status = { revision_conflict: 409, invalid_prompt: 422, empty_result: 422, worker_lost: 503 }[code] ?? 500;
  const message = code === 'revision_conflict'
    ? `the segment changed while the ${what} ran, so nothing was applied (${job.error.message})`
    : `${what} failed: ${job.error?.message ?? code}`;
  return new ApiError(status, code === 'revision_conflict' ? 'job_conflict' : code, message);
}

/**
 * Run one job on segment `id`: `verb` (propagate, finetune) is posted with `body` after the
 * segment's pending changes, on the revision the viewer holds; the job is followed with a
 * progress bar; `onEvent(name, data)` gets its streamed results. When it ends, the segment is
 * brought to the server's head (the job's revision, or whatever came meanwhile) through the
 * usual resync path, and any previews are taken out. Resolves to the final job (null when the
 * job was refused).
 */
export async function runSegmentJob(app, id, verb, body, { label, what, container, onEvent } = {}) {
  const { editor, masks } = app.session;
  const base = `${editor.base}/${id}`;
  let job;
  try {
    job = await editor.enqueue(id, () => {
      const held = masks.revision(id);
      return app.api.post(`${base}/${verb}`, { ...body, base_revision: held },
        held === null ? {} : { 'If-Match': `"${held}"` });
    });
  } catch (err) {
    if (err.status === 409) await editor.resync(id);
    app.report(err);
    return null;
  }
  app.emit('job', { job, segmentId: id });
  let final = null;
  try {
    final = await followJob(app, job, label, container ?? app.jobsElement ?? document.body, { onEvent });
  } catch (err) {
    app.report(err);
  }
  if (!editor.current) return final;
  // resync first, then take the previews out: nothing flickers
  await editor.enqueue(id, async () => {
    let fresh = null;
    try {
      fresh = await app.api.get(base);
      if (masks.revision(id) !== fresh.revision) await masks.resync(id);
    } finally {
      masks.clearPreview(id);
    }
    app.session.mergeSegment(fresh);
  }).catch((err) => app.report(err));
  app.views.requestDraw();
  if (final?.state === 'failed') app.report(jobError(final, what));
  app.emit('job', { job: final, segmentId: id });
  return final;
}

/** Propagate the active segment along `view`'s axis from its slice, unless a job runs on it. */
export async function propagate(app, view) {
  const { session } = app;
  const id = session.activeSegmentId;
  if (id !== null && session.jobs.has(id)) {
    app.notify('A job on this segment is already running.');
    return null;
  }
  const run = propagateActive(app, view, app.jobsElement ?? document.body);
  return id === null ? run : session.trackJob(id, run);
}

async function propagateActive(app, view, container) {
  const segment = app.session.activeSegment;
  if (!segment) {
    app.notify('Segment something on this slice first, then propagate it.');
    return null;
  }
  const methods = (app.caps?.propagation_methods ?? []).map((m) => m.name);
  const { propagationMethod } = app.tools;
  const method = methods.includes(propagationMethod) ? propagationMethod : methods[0];
  if (!method) {
    app.notify('This server offers no propagation.');
    return null;
  }
  const id = segment.id;
  const final = await runSegmentJob(app, id, 'propagate',
    { axis: view.axis, start_index: view.index, method }, {
      label: `propagate ${view.layout?.plane ?? view.axis}`,
      what: 'propagation',
      container,
      // each finished slice is shown before the job commits
      onEvent: (name, data) => {
        if (name === 'slice' && app.session.editor.current && data.delta) app.session.masks.preview(id, data.delta);
      },
    });
  if (final?.state === 'succeeded') {
    const n = final.result?.slices_changed?.length ?? 0;
    const flags = final.result?.flags?.length ?? 0;
    app.notify(`Propagated: ${n} slice${n === 1 ? '' : 's'} changed` +
      (flags ? `, ${flags} flagged for a second look` : '') + '.');
  }
  return final;
}

/** A small padlock (inline SVG: no emoji font needed). */
export const LOCK_ICON = '<svg class="icon" width="10" height="12" viewBox="0 0 10 12" aria-hidden="true">' +
  '<rect x="1" y="5" width="8" height="7" rx="1" fill="currentColor"/>' +
  '<path d="M3 5V3.5a2 2 0 0 1 4 0V5" stroke="currentColor" fill="none" stroke-width="1.5"/></svg>';

export function isLocked(segment, axis, index) {
  return Boolean(segment?.locked_slices?.[axis]?.includes(index));
}

/** Lock or unlock the slice shown in `view` for the active segment. */
export async function toggleLock(app, view) {
  const { session } = app;
  const segment = session.activeSegment;
  if (!segment) {
    app.notify('Locks belong to a segment: create or pick one first.');
    return;
  }
  const locked = isLocked(segment, view.axis, view.index);
  try {
    const path = `${session.editor.base}/${segment.id}/locks/${view.axis}/${view.index}`;
    const answer = locked ? await app.api.delete(path) : await app.api.json('PUT', path);
    session.mergeSegment({ id: segment.id, locked_slices: answer.locked_slices });
  } catch (err) {
    app.report(err);
  }
}
