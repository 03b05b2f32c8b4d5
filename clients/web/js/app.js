// The viewer's coordinator: it builds the parts, wires them together and is the event bus they
// share. The parts: `session` (the open session's state and the calls that change it), `tools`
// (the active tool, 2D/3D, methods and their parameters), `views` (the three slice views and
// the grey window), `clock` (click-to-paint times). Panels (ui/) listen to the events:
// 'capabilities', 'session', 'segments', 'overlay', 'history', 'job', 'tool', 'method',
// 'points', 'hints', 'window', 'busy', 'status' {kind, ...}, 'message' {level, title, detail}, 'stats',
// 'lost' (the open session is gone from the server); and ask each other through it, without
// knowing which panel answers: 'open', 'help', 'need-key', 'escape', 'next-window', 'finetune'.

import { Api } from './api.js';
import { PaintClock } from './latency.js';
import { HintLayer } from './hints.js';
import { describe } from './messages.js';
import { PromptLayer } from './prompts.js';
import { Session } from './session.js';
import { ToolSelection } from './tools/selection.js';
import { Views } from './views.js';

export class App extends EventTarget {
  constructor(viewsElement) {
    super();
    this.api = new Api();
    this.caps = null;
    this.models = null; // /v1/models when the server has it
    this.messages = []; // every message shown, for tests and the console
    this.jobsElement = null; // where job progress bars go (the toolbar sets it)
    this.tools = new ToolSelection(this);
    this.session = new Session(this);
    this.clock = new PaintClock(this);
    this.views = new Views(this, viewsElement);
    this.prompts = new PromptLayer(this); // the prompts sent, drawn until the next revision
    this.hints = new HintLayer(this); // where the active segment is probably wrong (J)
    this.lost = false; // the open session is gone from the server (404 session_not_found)
    this.addEventListener('segments', () => this.views.updateLocks());
    this.addEventListener('overlay', () => this.views.repaintOverlays());
    this.api.addEventListener('response', (e) => this.emit('status', { kind: 'server', ...e.detail }));
  }

  emit(type, detail = {}) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** Capabilities (and models when offered); false when an API key is needed first. */
  async connect() {
    try {
      this.caps = await this.api.get('/v1/capabilities');
    } catch (err) {
      this.report(err);
      return false;
    }
    try {
      this.models = await this.api.get('/v1/models');
    } catch {
      this.models = null; // optional endpoint
    }
    this.tools.offer(this.caps);
    this.emit('capabilities');
    return true;
  }

  /** Show `record` (a SessionPublic): the views first, then its segments as their masks arrive. */
  async openSession(record) {
    this.lost = false;
    this.session.open(record);
    this.session.masks.addEventListener('change', (e) => this.views.maskChanged(e.detail.bbox));
    this.tools.reset();
    history.replaceState(null, '', `#session=${record.id}`);
    await this.views.open(record, this.session.slices);
    this.emit('session');
    // what the server changed in the upload to serve it (e.g. NaN voxels replaced)
    for (const warning of record.warnings ?? []) this.warn('Image changed on upload', warning);
    await Promise.all(record.segments.map((s) => this.session.addSegment(s)));
    const [first] = this.session.segments;
    if (first) this.session.setActiveSegment(first.id);
  }

  report(err) {
    const open = this.session.record;
    if (err.status === 404 && err.code === 'session_not_found' && open && err.path?.includes(open.id)) {
      // the open session expired or was deleted: one clear screen instead of a note per call
      if (!this.lost) {
        this.lost = true;
        console.warn('session gone', err);
        this.messages.push({ level: 'lost', title: 'Session gone', detail: err.message });
        history.replaceState(null, '', location.pathname + location.search);
        this.emit('lost', { error: err });
      }
      return;
    }
    console.error(err);
    const { title, detail } = describe(err);
    this.messages.push({ level: 'error', title, detail });
    this.emit('message', { level: 'error', title, detail, status: err.status, code: err.code });
    if (err.status === 401) this.emit('need-key');
  }

  notify(text) { this.emit('message', { level: 'info', title: text, detail: '' }); }

  warn(title, detail) { this.emit('message', { level: 'warning', title, detail }); }
}
