// Hints (issue 14): the regions of the active segment's current revision most likely wrong,
// ranked by the server (GET .../segments/{seg}/hints?k=3: centre, box, voxels, mL, likelihood,
// per-source share). Drawn on the views (the box's outline and its rank on every slice the box
// covers) and listed in the hints panel, where an entry jumps to its centre. Hints describe one
// revision of one segment: when that segment moves on (a change, undo, redo, a resync), or
// another segment becomes the active one, they are cleared and, while the panel is open,
// fetched again by themselves for the new head (debounced, one request in flight: an answer
// for an older revision is dropped). Closing the panel stops that.
// Geometry and wording are pure functions (node unit tests); the layer holds the state.

import { formatMl } from './stats.js';

export const HINT_K = 3;
export const HINT_REFETCH_MS = 300; // quiet time after a change before the hints are asked again
export const HINT_COLORS = { missing: '#ff9f1a', extra: '#ff40ff' };
const AXIS = { z: 0, y: 1, x: 2 };

/**
 * The outline of a hint's box (inclusive `{lo, hi}` in [z, y, x]) on the plane `index` of
 * `axis`, whose rows and columns run along `rowAxis` and `colAxis`: plane pixel edges {r0, c0,
 * r1, c1} around the box's voxels (r1, c1 exclusive), or null when that slice misses the box.
 */
export function hintRect(box, axis, index, rowAxis, colAxis) {
  const a = AXIS[axis];
  if (index < box.lo[a] || index > box.hi[a]) return null;
  const ra = AXIS[rowAxis];
  const ca = AXIS[colAxis];
  return { r0: box.lo[ra], c0: box.lo[ca], r1: box.hi[ra] + 1, c1: box.hi[ca] + 1 };
}

/** "add · 12.3 mL · 64 %": what to do there, the estimated error size and its likelihood. */
export function hintText(hint) {
  const what = hint.kind === 'extra' ? 'remove' : 'add';
  return `${what} · ${formatMl(hint.volume_ml)} · ${Math.round(100 * hint.likelihood)} %`;
}

/** The tooltip: the kind in words, where it is, and which sources flag it. */
export function hintTitle(hint) {
  const kind = hint.kind === 'extra'
    ? 'probably should not be in the mask (remove: right click, or select with the right button)'
    : 'probably missing from the mask (add: left click, or select)';
  const sources = Object.entries(hint.sources ?? {})
    .map(([name, share]) => `${name} ${Math.round(100 * share)} %`).join(', ');
  return `#${hint.rank}: ${kind}\ncentre [z y x] ${hint.centre.join(' ')} · ` +
    `box ${hint.box.lo.join(' ')} – ${hint.box.hi.join(' ')} · ${hint.voxels} voxels` +
    (sources ? `\nflagged by: ${sources}` : '');
}

/** Do hints fetched for `result` ({segmentId, revision}) still describe the segment shown? */
export function hintsCurrent(result, activeSegmentId, heldRevision) {
  return Boolean(result) && result.segmentId === activeSegmentId && result.revision === heldRevision;
}

/**
 * Should the open panel ask again for the hints of `head` ({segmentId, revision}: the active
 * segment's held head)? Not when the last answer (`answered`: hints, empty or an error) or the
 * request in flight (`asking`) is already for that head (same shape, null when none).
 */
export function refetchDue(head, answered, asking) {
  if (!head || head.segmentId === null || head.revision === null) return false;
  const same = (k) => Boolean(k) && k.segmentId === head.segmentId && k.revision === head.revision;
  return !same(answered) && !same(asking);
}

export class HintLayer {
  constructor(app) {
    this.app = app;
    this.result = null; // {sessionId, segmentId, revision, hints, sources, ms}
    this.state = 'idle'; // idle | loading | shown | stale | empty | error
    this.note = ''; // what the panel says about the state
    this.selected = null; // rank of the hint jumped to
    this.asked = 0; // counts fetches: an answer to an older one is dropped
    this.asking = null; // {segmentId, revision} of the request in flight
    this.answered = null; // {segmentId, revision} the last answer was for (none asked again)
    this.timer = 0; // a refetch waiting for the segment to be quiet
    this.visible = true;
    app.views.decorations.push((ctx, view) => this.draw(ctx, view));
    app.addEventListener('segments', () => this.follow());
    app.addEventListener('session', () => this.close());
  }

  get hints() { return this.result?.hints ?? []; }

  /** Is the panel open (hints asked for, not closed)? Then hints follow the active head. */
  get open() { return this.state !== 'idle'; }

  /** {segmentId, revision} of the active segment's held head. */
  head() {
    const { session } = this.app;
    const segmentId = session.activeSegmentId;
    return { segmentId, revision: segmentId === null ? null : session.masks?.revision(segmentId) ?? null };
  }

  set(state, note = '') {
    this.state = state;
    this.note = note;
    this.app.emit('hints');
    this.app.views.requestDraw();
  }

  /**
   * Fetch the hints of the active segment's head revision (at most HINT_K). `auto`: a refetch
   * after a change while the panel is open; its failure is said in the panel only.
   */
  async fetch(auto = false) {
    const { session } = this.app;
    const segmentId = session.activeSegmentId;
    if (segmentId === null || !session.record) {
      if (!auto) this.app.notify('Hints check a segment\'s mask: make or pick one first.');
      return false;
    }
    clearTimeout(this.timer);
    this.timer = 0;
    const ask = ++this.asked;
    this.result = null;
    this.selected = null;
    this.set('loading', auto ? 'The segment changed: looking again…'
      : 'looking for regions that are probably wrong…');
    // after the segment's pending changes, so the hints are for what the view shows
    await session.editor.settled();
    if (ask !== this.asked) return false;
    const revision = session.masks.revision(segmentId);
    this.asking = { segmentId, revision };
    let answer;
    try {
      answer = await this.app.api.get(
        `/v1/sessions/${session.record.id}/segments/${segmentId}/hints?k=${HINT_K}`);
    } catch (err) {
      if (ask !== this.asked) return false;
      this.answered = { segmentId, revision };
      if (refetchDue(this.head(), this.answered, null)) return false; // moved on: follow asks again
      if (err.code === 'empty_segment') this.set('empty', 'The active segment is empty: there is no mask to check yet.');
      else this.set('error', `No hints: ${err.message}`);
      if (!auto || err.status === 401 || err.code === 'session_not_found') this.app.report(err);
      return false;
    } finally {
      // a change that came while this one was in flight asks again now
      if (ask === this.asked && this.asking) {
        this.asking = null;
        if (this.open) queueMicrotask(() => this.follow());
      }
    }
    if (ask !== this.asked) return false;
    this.answered = { segmentId, revision };
    const result = { sessionId: session.record.id, segmentId, revision: answer.revision,
      hints: answer.hints, sources: answer.sources, ms: answer.ms };
    if (!hintsCurrent(result, session.activeSegmentId, session.masks.revision(segmentId)) ||
        revision !== answer.revision) {
      // an answer for an older revision: never drawn; the head it missed is asked for (follow)
      if (refetchDue(this.head(), this.answered, null)) return false;
      this.set('stale', 'The segment changed on the server while the hints were computed: J fetches them again.');
      return false;
    }
    this.result = result;
    const n = answer.hints.length;
    this.set('shown', n ? `${n} region${n === 1 ? '' : 's'} to look at, most likely wrong first (${answer.ms.toFixed(0)} ms)`
      : 'Nothing stands out: the mask looks consistent with the image.');
    return true;
  }

  /** `j`: fetch, or once the hints are shown, go to the next one. */
  fetchOrNext() {
    if (this.state === 'shown' && this.hints.length) {
      const next = this.selected === null ? 1 : (this.selected % this.hints.length) + 1;
      return Promise.resolve(this.jump(next));
    }
    return this.fetch();
  }

  /** Move every view to the centre of hint `rank`. */
  jump(rank) {
    const hint = this.hints.find((h) => h.rank === rank);
    if (!hint) return false;
    this.selected = rank;
    for (const view of this.app.views.all) view.setIndex(hint.centre[AXIS[view.axis]]);
    this.app.emit('hints');
    this.app.views.requestDraw();
    return true;
  }

  /**
   * The segments changed: hints that no longer hold (the segment moved on, went, or another
   * is active) are cleared, and while the panel is open the new head's are asked for once the
   * segment has been quiet HINT_REFETCH_MS, one request at a time (the one in flight asks again
   * when it ends).
   */
  follow() {
    this.check();
    if (!this.open || !this.app.session.record) return;
    if (!refetchDue(this.head(), this.answered, this.asking)) return;
    if (this.state !== 'loading') this.set('loading', 'The segment changed: looking again…');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = 0;
      if (!this.open || this.asking) return; // closed, or the one in flight asks again
      if (refetchDue(this.head(), this.answered, null)) this.fetch(true);
    }, HINT_REFETCH_MS);
  }

  /** The segment moved on, went, or another is active: the hints no longer hold. */
  check() {
    if (!this.result) return;
    const { session } = this.app;
    const { segmentId } = this.result;
    if (hintsCurrent(this.result, session.activeSegmentId, session.masks?.revision(segmentId))) return;
    const why = session.activeSegmentId !== segmentId ? 'Another segment is active'
      : 'The segment changed';
    this.result = null;
    this.selected = null;
    this.set('stale', `${why}: the hints were cleared (J fetches them again).`);
  }

  /** Close the panel: no hints, and no more refetching. */
  close() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.asking = null;
    this.answered = null;
    this.asked++;
    this.result = null;
    this.selected = null;
    this.set('idle');
  }

  toggle() {
    this.visible = !this.visible;
    this.app.views.requestDraw();
  }

  draw(ctx, view) {
    if (!this.visible || !this.result || !view.layout) return;
    if (this.result.sessionId !== this.app.session.record?.id) return;
    for (const hint of this.hints) {
      const rect = hintRect(hint.box, view.axis, view.index, view.layout.rowAxis, view.layout.colAxis);
      if (rect) drawHint(ctx, view, hint, rect, hint.rank === this.selected);
    }
  }
}

/** The box outline (around its voxels) and a numbered badge at its first corner. */
function drawHint(ctx, view, hint, { r0, c0, r1, c1 }, selected) {
  // plane pixel edges -> screen: toScreen takes pixel centres, edges are half a pixel off
  const corners = [[r0, c0], [r0, c1], [r1, c1], [r1, c0]].map(([r, c]) => view.toScreen(r - 0.5, c - 0.5));
  const color = HINT_COLORS[hint.kind] ?? HINT_COLORS.missing;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = selected ? 3 : 2;
  ctx.setLineDash(hint.kind === 'extra' ? [6, 3] : []);
  ctx.beginPath();
  corners.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
  ctx.closePath();
  ctx.stroke();
  // the badge sits inside the corner that is top-left on screen
  const x = Math.min(...corners.map((p) => p[0]));
  const y = Math.min(...corners.map((p) => p[1]));
  ctx.setLineDash([]);
  ctx.fillStyle = color;
  ctx.fillRect(x, y, 14, 14);
  ctx.fillStyle = '#000';
  ctx.font = 'bold 11px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.fillText(String(hint.rank), x + 7, y + 7.5);
  ctx.restore();
}
