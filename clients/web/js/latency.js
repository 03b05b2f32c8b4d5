// Click-to-paint and slice-to-paint times, kept in `latencies` for the latency benchmark and
// shown in the status line. A change is timed from its gesture to the first frame drawn after
// its answer was applied, split into waiting for the answer, applying the delta and painting.

export class PaintClock {
  constructor(app) {
    this.app = app;
    this.latencies = [];
    this.pending = null; // {t0, label, answeredAt, appliedAt, applied}: a change waiting to be painted
  }

  expect(t0, label) { this.pending = { t0, label, applied: false, answeredAt: performance.now() }; }
  cancel() { this.pending = null; }

  /** The answer is in the mask; the frame asked for here closes the measure, even when no pixel changed. */
  applied() {
    if (this.pending) Object.assign(this.pending, { appliedAt: performance.now(), applied: true });
    this.app.views.requestDraw();
  }

  painted() {
    const p = this.pending;
    if (!p?.applied) return;
    this.pending = null;
    const end = performance.now();
    performance.measure('medseg:change-to-paint', { start: p.t0, end, detail: { label: p.label } });
    this.latencies.push({ label: p.label, ms: end - p.t0, answer: p.answeredAt - p.t0,
      apply: p.appliedAt - p.answeredAt, paint: end - p.appliedAt });
    this.app.emit('status', { kind: 'paint', ms: end - p.t0 });
  }

  slicePainted(view, ms) {
    this.latencies.push({ label: `slice ${view.axis}`, ms });
  }
}
