// A progress bar, and the watcher for long-running jobs (fine-tuning, propagation) that the
// server may answer with: it follows `GET /v1/jobs/{id}/events` (server-sent events, read with
// fetch so the API key header goes along; EventSource cannot send headers) and falls back to
// polling `GET /v1/jobs/{id}`. A job reads {id, state, progress: {step, total, message}}, with
// state one of queued | running | succeeded | failed | cancelled. The server's events are named:
// `state` {state, progress, error}, `progress` {step, total, message}, `end` (the job record)
// update the job; any other (`slice` for propagation) goes to `onEvent(name, data)`.

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * Where a job stands, in words, from its `queue` report (GET /v1/jobs/{id} while it is queued
 * or running: position, jobs_ahead, workers, eta_s): "position 2 (1 ahead) · ETA 14 s", or
 * "ETA 5 s left" while running; '' when there is none.
 */
export function queueText(job) {
  const q = job?.queue;
  if (!q) return '';
  const eta = q.eta_s == null ? '' : `ETA ${formatSeconds(q.eta_s)}`;
  if (q.position == null) return eta ? `${eta} left` : '';
  const where = `position ${q.position} (${q.jobs_ahead} ahead)`;
  if (!q.workers) return `${where} · no job worker running`;
  return eta ? `${where} · ${eta}` : where;
}

function formatSeconds(seconds) {
  const s = Math.max(0, seconds);
  return s < 120 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

export class ProgressBar {
  /** `onCancel`: adds a cancel button that calls it (once). */
  constructor(container, label, { onCancel } = {}) {
    this.el = document.createElement('div');
    this.el.className = 'progress';
    this.el.innerHTML = '<span class="label"></span><progress max="1" value="0"></progress><span class="note"></span>';
    this.el.querySelector('.label').textContent = label;
    if (onCancel) {
      const cancel = Object.assign(document.createElement('button'),
        { className: 'cancel', textContent: 'Cancel', title: 'stop the job (nothing is applied)' });
      cancel.onclick = () => {
        cancel.disabled = true;
        onCancel();
      };
      this.el.append(cancel);
    }
    container.append(this.el);
  }

  /** step of total (null total: indeterminate), with an optional message. */
  set(step, total, message = '') {
    const bar = this.el.querySelector('progress');
    if (total) {
      bar.max = total;
      bar.value = step;
    } else {
      bar.removeAttribute('value');
    }
    this.el.querySelector('.note').textContent =
      message || (total ? `${Math.round((100 * step) / total)}%` : '');
  }

  finish(message = 'done', failed = false) {
    this.el.classList.add(failed ? 'failed' : 'done');
    this.el.querySelector('.cancel')?.remove();
    this.el.querySelector('.note').textContent = message;
    setTimeout(() => this.el.remove(), failed ? 6000 : 1500);
  }
}

/**
 * Follow job `jobId` until it ends; `onProgress(job)` on every update of the job, `onEvent(name,
 * data)` on the job's other events (streamed results). Resolves to the final job (rejects on
 * network/HTTP errors or abort through `signal`).
 */
export async function watchJob(api, jobId, onProgress,
  { signal, intervalMs = 500, onEvent = () => {}, job: start = null } = {}) {
  let last = start;
  try {
    const response = await api.fetch('GET', `/v1/jobs/${jobId}/events`,
      { headers: { Accept: 'text/event-stream' }, signal });
    await readEvents(response, (data, name) => {
      if (name === 'progress' && !('state' in data)) {
        last = { ...last, progress: data };
      } else if (name === 'end' || name === 'state' || (data && 'state' in data)) {
        last = { ...last, ...data };
      } else {
        onEvent(name, data);
        return;
      }
      onProgress(last);
    });
    if (last && FINAL.has(last.state)) return last;
  } catch (err) {
    if (err.name === 'AbortError' || (err.status && err.status !== 404 && err.status !== 406)) throw err;
  }
  for (;;) { // no event stream: poll
    const job = await api.get(`/v1/jobs/${jobId}`, { signal });
    onProgress(job);
    if (FINAL.has(job.state)) return job;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Parse a text/event-stream body: each event's `data:` lines as one JSON value, with its name. */
export async function readEvents(response, onData) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, '');
      const lines = block.split(/\r?\n/);
      const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      const name = lines.find((l) => l.startsWith('event:'))?.slice(6).trim() ?? 'message';
      if (data) onData(JSON.parse(data), name);
    }
  }
}
