// Interior margin points (MIDeepSeg): left clicks place points just inside the object's
// boundary, near its extreme points (right click takes the last one back); Enter (or the
// panel's Send button) sends them as one `points` interaction, in 2D on their slice or in 3D.
// Once a segment was started from points, left/right clicks refine it with the same method
// (`click` interactions) until "New points" is pressed.
import { registerTool } from './registry.js';

const MIN_POINTS = 3;
const state = {
  points: [], // [{zyx, axis, index}] placed, not sent yet
  refining: new Set(), // segment ids started from points in this tab: clicks refine them
  app: null,
  sending: false, // one send at a time (Enter on a focused Send button fires twice)
};

function changed() {
  if (!state.app) return;
  state.app.emit('points');
  state.app.views.requestDraw();
}

async function sendPoints(app) {
  state.app = app;
  if (state.sending) return false;
  if (state.points.length < MIN_POINTS) {
    app.notify(`Place at least ${MIN_POINTS} points just inside the object (${state.points.length} so far).`);
    return false;
  }
  const method = app.tools.methodFor('points');
  const { axis, index } = state.points[0];
  const part = { type: 'points', method: method?.name, points: state.points.map((p) => p.zyx) };
  state.sending = true;
  try {
    const segmentId = await app.session.ensureSegment().catch(() => null);
    const ok = await app.session.editor.send(part, { axis, index }, performance.now());
    if (ok) {
      state.points = [];
      if (segmentId !== null) state.refining.add(segmentId);
    }
    return ok;
  } finally {
    state.sending = false;
    changed();
  }
}

export default registerTool({
  id: 'points',
  label: 'Points',
  key: 'i',
  type: 'points',
  hint: 'left click points just inside the object near its extreme points, Enter sends; then click to refine',
  minPoints: MIN_POINTS,
  placed: () => state.points.length,

  reset() {
    state.points = [];
    state.refining.clear();
    changed();
  },

  /** True when clicks refine the active segment rather than place points. */
  refineMode: () => state.points.length === 0 && state.app !== null &&
    state.refining.has(state.app.session.activeSegmentId),

  begin({ view, zyx, foreground }) {
    state.app = view.app;
    const app = state.app;
    if (state.points.length === 0 && state.refining.has(app.session.activeSegmentId)) return { refine: true, zyx, foreground };
    if (!foreground) {
      state.points.pop();
      changed();
      return null;
    }
    const first = state.points[0];
    if (app.tools.dim === '2d' && first && (first.axis !== view.axis || first.index !== view.index)) {
      app.notify('In 2D the points go on one slice: started again on this one.');
      state.points = [];
    }
    state.points.push({ zyx, axis: view.axis, index: view.index });
    changed();
    return null;
  },

  finish(g, view, app) {
    // a refinement click, with the method that made the segment
    const method = app.tools.methodFor('points');
    return { type: 'click', method: method?.name, clicks: [{ zyx: g.zyx, foreground: g.foreground }] };
  },

  /** Send the placed points as one `points` interaction; resolves to true when applied. */
  send: (app) => app.session.editor.track(sendPoints(app)),

  /** Start placing points afresh on the active segment. */
  restart(app) {
    state.app = app;
    state.points = [];
    state.refining.delete(app.session.activeSegmentId);
    changed();
  },

  undoPoint() {
    state.points.pop();
    changed();
  },

  /** Markers for the placed points on the shown plane (numbered in order). */
  decorate(ctx, view) {
    ctx.save();
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 2;
    state.points.forEach((p, i) => {
      const pixel = view.pixelOf(p.zyx);
      if (!pixel) return;
      const [x, y] = view.toScreen(...pixel);
      ctx.beginPath();
      ctx.arc(x, y, 5, 0, 2 * Math.PI);
      ctx.fillStyle = '#ffd600';
      ctx.strokeStyle = '#000';
      ctx.fill();
      ctx.stroke();
      ctx.fillStyle = '#ffd600';
      ctx.fillText(String(i + 1), x + 7, y - 6);
    });
    ctx.restore();
  },
});
