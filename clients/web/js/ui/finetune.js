// Fine-tuning (BIFSeg, image-specific): shown when the server lists a `finetune` job kind and
// the active segment was made by a `box` with method `bifseg`. Unsupervised fine-tuning needs
// nothing more; supervised fine-tuning takes scribbles: while "Draw scribbles" is on, the
// Scribble tool's strokes are collected here (left inside, right outside) instead of being
// sent. Either posts `.../finetune` {mode, scribbles, params} and follows the job like a
// propagation (progress bar with loss, cancel, resync to the job's revision).

import { runSegmentJob } from '../propagation.js';
import { BG_COLOR, FG_COLOR, strokePixels } from '../tools/registry.js';

const KIND = 'finetune';
const MAX_POINTS = 10_000; // per scribble, as for scribble interactions

export function mountFinetune(app, el) {
  el.innerHTML = `<details open><summary>Fine-tune (BIFSeg)</summary>
    <p class="hint">Adapt the network to this image: as it is, or guided by scribbles
      (left inside, right outside).</p>
    <div class="buttons">
      <button class="unsupervised" title="fine-tune on this image without scribbles (F)">Fine-tune</button>
      <button class="collect" title="strokes of the Scribble tool become fine-tuning scribbles">Draw scribbles</button>
      <button class="supervised" title="fine-tune with the scribbles drawn">Fine-tune with scribbles</button>
      <button class="clear" title="forget the scribbles drawn">Clear</button></div>
    <p class="hint count"></p></details>`;
  const $ = (s) => el.querySelector(s);
  let scribbles = []; // [{path: [[z, y, x]], foreground}]
  let collecting = false;
  const { session, tools, views } = app;

  const offered = () => (app.caps?.job_kinds ?? []).some((k) => k.name === KIND);
  const madeByBifsegBox = () => {
    const h = session.history;
    return h?.segmentId === session.activeSegmentId &&
      h.revisions.some((r) => !r.undone && r.interaction?.type === 'box' && r.interaction?.method === 'bifseg');
  };

  function render() {
    const segment = session.activeSegment;
    el.hidden = !(offered() && segment && madeByBifsegBox());
    if (el.hidden && collecting) setCollecting(false);
    const busy = Boolean(segment && session.jobs.has(segment.id));
    $('.unsupervised').disabled = busy;
    $('.supervised').disabled = busy || !scribbles.length;
    $('.clear').disabled = !scribbles.length;
    $('.collect').classList.toggle('on', collecting);
    $('.count').textContent = `${scribbles.length} scribble${scribbles.length === 1 ? '' : 's'}` +
      (collecting ? ' · drawing: drag on the image (left inside, right outside)' : '');
  }

  function setCollecting(on) {
    collecting = on;
    if (on) {
      const tool = tools.offered.find((t) => t.id === 'scribble');
      if (tool) tools.setTool(tool);
    }
    views.requestDraw();
    render();
  }

  tools.capture = (tool, gesture) => {
    if (!collecting || tool.id !== 'scribble' || el.hidden) return false;
    const step = Math.ceil(gesture.path.length / MAX_POINTS);
    const path = gesture.path.filter((_, i) => i % step === 0 || i === gesture.path.length - 1);
    scribbles.push({ path, foreground: gesture.foreground });
    render();
    views.requestDraw();
    return true;
  };

  views.decorations.push((ctx, view) => {
    if (el.hidden) return;
    for (const s of scribbles) {
      const pixels = s.path.map((zyx) => view.pixelOf(zyx)).filter(Boolean);
      if (pixels.length) strokePixels(ctx, view, pixels, s.foreground ? FG_COLOR : BG_COLOR);
    }
  });

  async function finetune(mode) {
    const segment = session.activeSegment;
    if (!segment || session.jobs.has(segment.id)) return;
    const body = { mode, scribbles: mode === 'supervised' ? scribbles : [], params: {} };
    const final = await session.trackJob(segment.id, runSegmentJob(app, segment.id, 'finetune', body,
      { label: mode === 'supervised' ? 'fine-tune (scribbles)' : 'fine-tune', what: 'fine-tuning' }));
    if (final?.state === 'succeeded') {
      app.notify('Fine-tuned on this image.');
      if (mode === 'supervised') scribbles = [];
      setCollecting(false);
    }
  }

  $('.unsupervised').onclick = () => finetune('unsupervised');
  $('.supervised').onclick = () => finetune('supervised');
  $('.collect').onclick = () => setCollecting(!collecting);
  $('.clear').onclick = () => {
    scribbles = [];
    render();
    views.requestDraw();
  };
  app.addEventListener('finetune', () => { // the F key
    if (!el.hidden) finetune(scribbles.length ? 'supervised' : 'unsupervised');
    else app.notify('Fine-tuning is for segments made by a box with the bifseg method.');
  });
  for (const type of ['capabilities', 'segments', 'history', 'job']) app.addEventListener(type, render);
  app.addEventListener('session', () => {
    scribbles = [];
    setCollecting(false);
  });
  render();
}
