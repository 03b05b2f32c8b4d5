// Sends changes of a segment (tool gestures, undo, redo) one at a time per segment, each made
// on the revision the viewer holds, and applies the answers' deltas. A 409 revision_conflict
// means the segment moved on elsewhere: the mask is resynced and the user told, nothing is
// replayed blindly. One editor per open session: changes still in flight when another
// session is opened finish against their own session and masks, and touch nothing else.

export class Editor {
  constructor(app, session = null, masks = null) {
    this.app = app;
    this.session = session;
    this.masks = masks;
    this.queues = new Map(); // segment id -> tail of its promise chain
    this.inflight = new Set(); // every change from gesture to applied answer
  }

  track(promise) {
    this.inflight.add(promise);
    this.app.emit('busy', { busy: true });
    promise.finally(() => {
      this.inflight.delete(promise);
      if (!this.inflight.size) this.app.emit('busy', { busy: false });
    }).catch(() => {});
    return promise;
  }

  get base() { return `/v1/sessions/${this.session.id}/segments`; }

  /** False once another session has been opened. */
  get current() { return this.app.editor === this; }

  enqueue(segmentId, task) {
    const run = (this.queues.get(segmentId) ?? Promise.resolve()).then(task);
    this.queues.set(segmentId, run.catch(() => {}));
    return run;
  }

  /** Resolves when every change made so far has been answered and applied. */
  async settled() {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  submitGesture(tool, gesture, view) {
    return this.track(this.gesture(tool, gesture, view));
  }

  async gesture(tool, gesture, view) {
    const app = this.app;
    const part = tool.finish(gesture, view, app);
    if (!part) return;
    const method = app.methodFor(part.type);
    if (!method) {
      app.notify(`The server offers no method for ${part.type} in ${app.dim.toUpperCase()}.`);
      return;
    }
    const body = { ...part, method: method.name, dim: app.dim };
    const params = app.methodParams[method.name];
    if (params && Object.keys(params).length) body.params = { ...params };
    if (app.dim === '2d') body.plane = { axis: view.axis, index: view.index };
    let segmentId;
    try {
      segmentId = await app.ensureSegment();
    } catch (err) {
      app.report(err);
      return;
    }
    return this.enqueue(segmentId, () => this.change(segmentId, 'interactions', body, gesture.t0));
  }

  undo() { return this.step('undo'); }
  redo() { return this.step('redo'); }

  step(verb) {
    const segmentId = this.app.activeSegmentId;
    if (segmentId === null) return Promise.resolve();
    return this.track(this.enqueue(segmentId,
      () => this.change(segmentId, verb, undefined, performance.now())));
  }

  async change(segmentId, verb, body, t0) {
    const { app, masks } = this;
    const held = masks.revision(segmentId);
    if (body) body.base_revision = held;
    try {
      const result = await app.api.post(`${this.base}/${segmentId}/${verb}`, body,
        held === null ? {} : { 'If-Match': `"${held}"` });
      if (this.current) app.expectPaint(t0, verb === 'interactions' ? body.type : verb);
      await masks.follow(segmentId, result.delta);
      if (!this.current) return;
      if (app.pending) app.pending.appliedAt = performance.now();
      app.segmentChanged(segmentId, result);
    } catch (err) {
      if (err.status === 409 && err.code === 'revision_conflict') await this.resync(segmentId);
      if (!this.current) return;
      app.cancelPaint();
      app.report(err);
    }
  }

  async resync(segmentId) {
    try {
      await this.masks.resync(segmentId);
      if (this.current) await this.app.refreshSegment(segmentId);
    } catch (err) {
      if (this.current) this.app.report(err);
    }
  }
}
