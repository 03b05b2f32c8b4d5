// Sends changes of a segment (tool gestures, undo, redo) one at a time per segment, each made
// on the revision the viewer holds, and applies the answers' deltas. A 409 revision_conflict
// means the segment moved on elsewhere: the mask is resynced and the user told, nothing is
// replayed blindly. One editor per open session: changes still in flight when another
// session is opened finish against their own session and masks, and touch nothing else.

export class Editor {
  constructor(app, record = null, masks = null) {
    this.app = app;
    this.record = record; // SessionPublic of the session it changes
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

  get base() { return `/v1/sessions/${this.record.id}/segments`; }

  /** False once another session has been opened. */
  get current() { return this.app.session.editor === this; }

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
    const part = tool.finish(gesture, view, this.app);
    if (part) return this.send(part, view, gesture.t0);
  }

  /**
   * Send one interaction `part` ({type, ...}, optionally its own `method`) on the active
   * segment, in 2D on the plane of `view` ({axis, index}). Resolves to true when applied.
   */
  async send(part, view, t0 = performance.now()) {
    const { app } = this;
    const { tools } = app;
    const { method: wanted, ...rest } = part;
    const dim = rest.dim ?? tools.dim; // a 2D-only tool (fill, select) says so in its part
    const method = wanted ? tools.methodsFor(rest.type, dim).find((m) => m.name === wanted)
      : tools.methodFor(rest.type, dim);
    if (!method) {
      app.notify(`The server offers no method ${wanted ?? ''} for ${rest.type} in ${dim.toUpperCase()}.`);
      return false;
    }
    const body = { ...rest, method: method.name, dim };
    const params = tools.methodParams[method.name];
    if (params && Object.keys(params).length) body.params = { ...params };
    if (dim === '2d') body.plane = { axis: view.axis, index: view.index };
    let segmentId;
    try {
      segmentId = await app.session.ensureSegment();
    } catch (err) {
      app.report(err);
      return false;
    }
    return this.enqueue(segmentId, () => this.change(segmentId, 'interactions', body, t0));
  }

  undo() { return this.step('undo'); }
  redo() { return this.step('redo'); }

  step(verb) {
    const segmentId = this.app.session.activeSegmentId;
    if (segmentId === null) return Promise.resolve();
    return this.track(this.enqueue(segmentId,
      () => this.change(segmentId, verb, undefined, performance.now())));
  }

  /** Remove the interaction that made `revision` of segment `segmentId` from its history: the
   * server replays the rest and answers a new revision (one undo brings it back). */
  removeInteraction(segmentId, revision) {
    return this.track(this.enqueue(segmentId,
      () => this.change(segmentId, `interactions/${revision}`, undefined, performance.now(), 'DELETE')));
  }

  async change(segmentId, verb, body, t0, httpMethod = 'POST') {
    const { app, masks } = this;
    const held = masks.revision(segmentId);
    if (body) body.base_revision = held;
    // the prompt is drawn from now until the segment's next revision
    const prompt = verb === 'interactions' && this.current ? app.prompts?.add(segmentId, body) : null;
    try {
      const result = await app.api.json(httpMethod, `${this.base}/${segmentId}/${verb}`, {
        json: body, headers: held === null ? {} : { 'If-Match': `"${held}"` } });
      if (this.current) app.clock.expect(t0, verb === 'interactions' ? body.type : httpMethod === 'DELETE' ? 'remove' : verb);
      await masks.follow(segmentId, result.delta);
      if (!this.current) return;
      app.clock.applied();
      // the server locks the slice of every 2D interaction: mirror it without a request
      if (body?.plane) app.session.markLocked(segmentId, body.plane.axis, body.plane.index);
      app.session.segmentChanged(segmentId, result);
      if (prompt) app.prompts.answered(prompt, result.revision);
      return true;
    } catch (err) {
      if (prompt) app.prompts.drop(prompt);
      if (err.status === 409 && err.code === 'revision_conflict') await this.resync(segmentId);
      if (!this.current) return false;
      app.clock.cancel();
      app.report(err);
      return false;
    }
  }

  async resync(segmentId) {
    try {
      await this.masks.resync(segmentId);
      if (this.current) await this.app.session.refreshSegment(segmentId);
    } catch (err) {
      if (this.current) this.app.report(err);
    }
  }
}
