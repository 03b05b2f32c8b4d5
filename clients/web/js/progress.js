// A progress bar, and the watcher for long-running jobs (fine-tuning, propagation) that the
// server may answer with: it follows `GET /v1/jobs/{id}/events` (server-sent events, read with
// fetch so the API key header goes along; EventSource cannot send headers) and falls back to
// polling `GET /v1/jobs/{id}`. A job reads {id, state, progress: {step, total, message}}, with
// state one of queued | running | succeeded | failed | cancelled.

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

export class ProgressBar {
  constructor(container, label) {
    this.el = document.createElement('div');
    this.el.className = 'progress';
    this.el.innerHTML = '<span class="label"></span><progress max="1" value="0"></progress><span class="note"></span>';
    this.el.querySelector('.label').textContent = label;
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
    this.el.querySelector('.note').textContent = message;
    setTimeout(() => this.el.remove(), failed ? 6000 : 1500);
  }
}

/**
 * Follow job `jobId` until it ends; `onProgress(job)` on every update. Resolves to the final
 * job (rejects on network/HTTP errors or abort through `signal`).
 */
export async function watchJob(api, jobId, onProgress, { signal, intervalMs = 500 } = {}) {
  try {
    const response = await api.fetch('GET', `/v1/jobs/${jobId}/events`,
      { headers: { Accept: 'text/event-stream' }, signal });
    let last = null;
    await readEvents(response, (job) => {
      last = job;
      onProgress(job);
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

/** Parse a text/event-stream body: each event's `data:` lines as one JSON value. */
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
      const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart()).join('\n');
      if (data) onData(JSON.parse(data));
    }
  }
}
